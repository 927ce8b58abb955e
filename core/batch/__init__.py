"""`python -m core batch`: score (and optionally explain) an archive on Ray, into one resumable Parquet file.

`inputs` turns folders, zips and list files into work items (one per image or DICOM series, with a content
hash); `worker` scores items with the model loaded once per process; `store` keeps finished batches as part
files and merges them into the final Parquet; `runner` drives Ray Data (local or a cluster) and reports
progress; `localisation` fans `xai-eval --localisation` out over the same machinery.
"""
