"""palsy-fusion core: everything that is not UI.

Decoding, landmarks, alignment, the modalities, the fused model, training, evaluation,
explanation and reports. Never imports Streamlit. Research tool, not a diagnostic device.
"""

__version__ = "0.1.0"
