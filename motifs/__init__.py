"""Motifs: a 1D CNN finds transcription-factor binding sites in DNA windows, explained by in-silico mutagenesis."""
