"""Scoring with a trained model: the front door (``screen``), scored media, live scoring,
explanations, reports and the dashboard's sample pair."""
