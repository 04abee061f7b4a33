"""The synthetic multi-person data of ``tools/make_synthetic.py`` and
``tools/make_synthetic_video.py``: people (:mod:`.person`), images (:mod:`.scene`) and COCO
annotations (:mod:`.coco`)."""
