"""Training of the modality classifier: volumes, augmentation, samples, CV, calibration, metrics."""
