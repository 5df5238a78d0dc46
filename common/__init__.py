"""What every deepbio task shares: trainer factory, generic classifier, data helpers, plots, reports."""
