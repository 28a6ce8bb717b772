"""A learned, slimmable bottleneck at an early cut of a real pretrained model (split computing).

The teacher is mediapipe's ``hand_landmark_full`` (TFLite, from the ``mediapipe==0.10.14``
wheel), converted TFLite -> ONNX -> torch and checked on photographs (:mod:`.teacher`).
An encoder after its first stride-4 block and a decoder before the rest are trained
without labels, in BottleFit's two stages, on augmented package-shipped photographs
(:mod:`.data`, :mod:`.train`); the encoder is slimmable (one set of weights, widths 1, 2, 4
and 8 channels, :mod:`.net`). Each width is exported as a cut of an ordinary package
(head and tail ONNX graphs, :mod:`.build`), calibrated on held-out photographs
(:mod:`.calibrate`), and chosen per request like any split plan; :mod:`.plans` reads it
on the device or the worker without torch. See ``docs/bottleneck.md``.
"""
