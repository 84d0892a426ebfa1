"""Tidy executed notebooks before they are committed: `python notebooks/tidy.py NOTEBOOK...`.

A progress bar writes hundreds of partial lines separated by carriage returns; a terminal shows only the
last state of each line, a stored notebook keeps them all. This merges consecutive stream outputs and keeps,
for each line, what a terminal would show. Run by `make notebooks` after executing each notebook.
"""

import sys

import nbformat


def collapse(text: str) -> str:
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))


def tidy(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for o in cell.outputs:
            if o.output_type == "stream" and outputs and outputs[-1].output_type == "stream" \
                    and outputs[-1].name == o.name:
                outputs[-1].text += o.text
            else:
                outputs.append(o)
        for o in outputs:
            if o.output_type == "stream":
                o.text = collapse(o.text)
        cell.outputs = [o for o in outputs if not (o.output_type == "stream" and not o.text.strip())]
    nbformat.write(nb, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        tidy(p)
