"""Training of the rigid 3D estimators: the paper's DCNN + ANN and the keypoint DCNN."""
