"""Training, sample building and model evaluation for the three pipelines.

Not needed for inference, and not installed by the Slicer extension's inference target
(`SlicerDLReg_INSTALL_TRAINING` adds it for the modules' training sections). Extra
packages that only training needs come with `pip install "dlreg[train]"`.
- `affine_mlp`: the zero-shot paper's MLP on synthetic point sets.
- `rigid`: the paper's DCNN + ANN (`dcnn_ann`), the keypoint DCNN (`keypoints`), their
  pairs, augmentation and the paper's ground truth (PCA symmetry + (1+1)-EA MI).
- `modality`: labelled volumes, augmentation, samples, training with cross-validation,
  calibration and the paper's classification metrics.
Data locations are arguments only.
"""
