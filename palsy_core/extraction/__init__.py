"""From a photo or video to every modality per frame, and the on-disk cache."""
