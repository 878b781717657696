"""The labelling loop: pick the comments the served models are least sure of, write them as Label
Studio tasks (prediction pre-filled), and read the finished annotations back as manual labels
(``training.labelstudio``) for the next training run. See docs/training.md, "Labelling loop"."""
