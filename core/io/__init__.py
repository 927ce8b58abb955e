"""Images in: decoding files (JPEG, PNG, BMP, TIFF, DICOM) and the one preprocessing function. Lowest layer."""
