"""Image tagging: labels (objects), text, known people and moderation, in Rekognition's shapes.

``operations`` is the one list of tagging operations and runs them on any backend
(``facetrail.backends``: each backend implements detect_labels, detect_text and
detect_moderation_labels); ``labels``, ``scenes``, ``text`` and ``moderation`` turn the local
models' outputs (``facetrail.inference``) into Rekognition-shaped values; ``tables`` makes the
long and wide tables analysts load. Importing this package imports no model runtime.

    from facetrail.backends import get_backend
    from facetrail.tagging.operations import run_ops
    run_ops(settings, get_backend(settings), image, ["labels", "text"])
    # {"labels": [{"Name": "Dog", ...}], "text": [{"DetectedText": ..., "Type": "LINE"}, ...]}
"""
