"""Pixels to templates: decode and check image files, propose and detect faces, find landmarks, align, embed,
average the views into a template, and compare templates. Needs models, never a data folder. A new model is a
module in ``vision/models/`` behind the Protocols of ``vision/models/base.py``."""
