"""Grad-CAM heat-maps of a bundle's decision, mapped back onto the original radiograph."""

from osteoscan.explain.gradcam import Explainer, HeatMap, grad_cam, target_layer_path

__all__ = ["Explainer", "HeatMap", "grad_cam", "target_layer_path"]
