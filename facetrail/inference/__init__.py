"""facetrail's inference stack: every model is a :class:`facetrail.inference.base.Model`.

Face detection (``detector``), face embedding (``embedders``), objects (``labels``), ImageNet
classes (``classifier``), text (``text``) and moderation (``moderation``) all load lazily, once
per process, through one cache (``Model.shared``); ``runtime`` builds their onnxruntime sessions
and TFLite interpreters. Turning model outputs into Rekognition-shaped answers is the backends'
job, not the models'.
"""
