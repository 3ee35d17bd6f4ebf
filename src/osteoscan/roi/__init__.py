"""Knee-joint regions of interest: find each knee in a radiograph and crop a standard square."""
