"""The per-frame views the model reads besides the aligned face itself: line segments,
expression features, face-network and blendshape asymmetry."""
