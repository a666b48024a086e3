"""`TransferReport`: what a weight transfer or a checkpoint conversion did, weight by weight."""

import dataclasses


@dataclasses.dataclass
class TransferReport:
    """What a weight transfer or a checkpoint initialisation did: one
    `(path, action, old_shape, new_shape)` per weight.

    `action` is `"copied"`, `"resized"` or `"skipped"`.
    """

    entries: list

    def paths(self, action):
        return [path for path, act, _, _ in self.entries if act == action]

    def __str__(self):
        lines = []
        for path, action, old, new in self.entries:
            change = f" {old} -> {new}" if action == "resized" else ""
            lines.append(f"{action:8s} {path}{change}")
        return "\n".join(lines)
