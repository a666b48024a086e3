"""`FrontEnd`: what a compression method does at factor C before the AST's patch embedding."""

import dataclasses

AST_METHODS = ("fshift", "maxpool", "avgpool", "patch-bl", "patch-pi")


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """What a (method, factor) pair does before the transformer.

    Attributes:
        frame_shift_ms: fbank frame shift.
        fbank_frames: frames the fbank is padded/cropped to.
        pool_factor: time-pooling factor applied to the fbank (1 = none).
        pool_mode: `"max"` or `"avg"`.
        patch_size, patch_stride: `(freq, time)` of the patch embedding.
        frames: frames of the spectrogram that reaches the patch embedding.
    """

    frame_shift_ms: float
    fbank_frames: int
    pool_factor: int
    pool_mode: str
    patch_size: tuple
    patch_stride: tuple
    frames: int


def front_end(method, factor, target_frames, frame_shift_ms, patch_size, patch_stride):
    """Resolves the paper's compression method at factor C into a `FrontEnd`.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415), §2: `fshift`
    multiplies the frame shift by C and targets `target_frames / C` frames;
    `maxpool` / `avgpool` pool the full-resolution fbank C× along time;
    `patch-bl` / `patch-pi` keep the fbank and use patches (and strides) C× wider
    in time. All span the same clip, so a 10 s clip gives 8 × 64/C tokens with
    16×16 patches and 128 mel bins.
    """
    if method not in AST_METHODS:
        raise ValueError(f"method must be one of {AST_METHODS}. Received: method={method!r}")
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1. Received: factor={factor}")
    if target_frames % factor:
        raise ValueError(
            "target_frames must be divisible by factor. Received: "
            f"target_frames={target_frames}, factor={factor}"
        )
    (pf, pt), (sf, st) = patch_size, patch_stride
    if method == "fshift":
        return FrontEnd(frame_shift_ms * factor, target_frames // factor, 1, "max",
                        (pf, pt), (sf, st), target_frames // factor)
    if method in ("maxpool", "avgpool"):
        return FrontEnd(frame_shift_ms, target_frames, factor, method[:3],
                        (pf, pt), (sf, st), target_frames // factor)
    return FrontEnd(frame_shift_ms, target_frames, 1, "max",
                    (pf, pt * factor), (sf, st * factor), target_frames)
