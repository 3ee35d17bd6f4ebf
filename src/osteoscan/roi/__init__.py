"""Knee-joint regions of interest: find each knee in a radiograph and crop a standard square.

Part of the data layer (numpy, Pillow and pydicom only; never models or training)::

    from osteoscan.roi import RoiConfig, find_knees, crop_knees

    detection = find_knees(pixels, RoiConfig())  # pixels from osteoscan.data.decode.read_image
    crops = crop_knees(pixels, detection, size=224)  # [] when detection.found is False
"""

from osteoscan.roi.batch import RoiImage, RoiReport, locate, pixel_spacing, run_roi
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.crop import Crop, crop_box, crop_knees
from osteoscan.roi.localise import Knee, KneeDetection, find_knees
from osteoscan.roi.summary import SUMMARY_RULE, image_rows, most_abnormal

__all__ = [
    "Crop",
    "Knee",
    "KneeDetection",
    "RoiConfig",
    "RoiImage",
    "RoiReport",
    "SUMMARY_RULE",
    "crop_box",
    "crop_knees",
    "find_knees",
    "image_rows",
    "locate",
    "most_abnormal",
    "pixel_spacing",
    "run_roi",
]
