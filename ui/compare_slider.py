"""A scan ↔ overlay comparison slider that works offline.

`streamlit_image_comparison.image_comparison` loads the juxtapose library from cdn.knightlab.com at
view time, so on a hospital network without internet it renders an empty frame. This keeps the
package's image handling and draws the same divider slider with inline CSS/JS only.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_image_comparison import pillow_to_base64, read_image_as_pil

SLIDER_HTML = """
<style>
body {{ margin: 0; font-family: sans-serif; }}
.cmp {{ position: relative; width: {width}px; height: {height}px; user-select: none; }}
.cmp img {{ position: absolute; top: 0; left: 0; width: {width}px; height: {height}px; }}
.cmp .top {{ clip-path: inset(0 0 0 {start}%); }}
.cmp .bar {{ position: absolute; top: 0; bottom: 0; left: {start}%; width: 2px; background: #fff; }}
.cmp .tag {{ position: absolute; top: 6px; padding: 2px 6px; background: rgba(0,0,0,.6); color: #fff;
            font-size: 12px; border-radius: 3px; }}
.cmp input {{ position: absolute; inset: 0; width: 100%; height: 100%; margin: 0; opacity: 0; cursor: ew-resize; }}
</style>
<div class="cmp" aria-label="Drag to compare {label1} and {label2}">
  <img src="{img1}" alt="{label1}"><img class="top" src="{img2}" alt="{label2}">
  <div class="bar"></div><span class="tag" style="left:6px">{label1}</span>
  <span class="tag" style="right:6px">{label2}</span>
  <input type="range" min="0" max="100" value="{start}" aria-label="comparison position">
</div>
<script>
const box = document.querySelector('.cmp');
box.querySelector('input').addEventListener('input', e => {{
  box.querySelector('.top').style.clipPath = `inset(0 0 0 ${{e.target.value}}%)`;
  box.querySelector('.bar').style.left = `${{e.target.value}}%`;
}});
</script>
"""


def comparison_slider(img1: np.ndarray, img2: np.ndarray, label1: str, label2: str, width: int = 512,
                      start: int = 50) -> None:
    """Two same-size RGB images stacked; dragging reveals `img1` on the left and `img2` on the right."""
    first, second = read_image_as_pil(img1), read_image_as_pil(img2)
    height = round(width * first.height / first.width)
    html = SLIDER_HTML.format(width=width, height=height, start=start, label1=label1, label2=label2,
                              img1=pillow_to_base64(first), img2=pillow_to_base64(second))
    st.iframe(html, width=width, height=height + 4)
