"""The course's own trained keras models, loaded here, behave on real data as the course says they should."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.io import decode_jpeg, read_file

from motifs.encode import one_hot, sequence_codes
from motifs.explain import position_importance, predict, substitution_ism, top_position_enrichment
from motifs.io import read_fasta
from motifs.keras_weights import motif_classifier_from_keras
from motifs.pwm import hit_mask, known_matrix
from motifs.shuffle import shuffle_all
from rickmorty.keras_weights import autoencoder_from_keras
from rickmorty.noise import masking_noise


def test_course_motif_cnn_calls_sox17_peaks_and_looks_at_sox_sites(course_data):
    names, sequences = read_fasta(course_data / "ChIP/SOX17.fa")
    pick = np.random.default_rng(0).choice(len(names), 300, replace=False)
    codes = sequence_codes([sequences[i] for i in pick], [names[i] for i in pick])
    model = motif_classifier_from_keras(course_data / "RickandMorty/data/models/modelCNNTF.h5")
    called_sox17 = (predict(model, one_hot(codes)).argmax(1) == 0).float().mean()
    called_sox17_shuffled = (predict(model, one_hot(shuffle_all(codes))).argmax(1) == 0).float().mean()
    assert called_sox17 > 0.75 and called_sox17_shuffled < 0.5  # report: 0.85 vs 0.38 on all 11,843 peaks
    x = one_hot(codes[:30])
    importance = position_importance(substitution_ism(model, x, target=0))
    enrichment = top_position_enrichment(importance, hit_mask(x, known_matrix("SOX17")), top_k=5)["enrichment"]
    assert enrichment > 3  # 8x here; 11.7x on 400 peaks in the report


def test_course_denoiser_restores_masked_real_frames(course_data):
    paths = sorted((course_data / "RickandMorty/data/predictions").glob("*.jpg"))[:6]
    clean = torch.stack([decode_jpeg(read_file(str(p)))[:, :90, :160] for p in paths]).float() / 255
    noisy = masking_noise(clean, 0.2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        denoised = autoencoder_from_keras(course_data / "RickandMorty/data/models/modelAEND.h5")(noisy)
        rebuilt = autoencoder_from_keras(course_data / "RickandMorty/data/models/modelAE.h5")(clean)
    assert (denoised - clean).pow(2).mean() < (noisy - clean).pow(2).mean() / 5
    assert (rebuilt - clean).pow(2).mean() < 0.005  # report: 0.0013 on 192 frames
