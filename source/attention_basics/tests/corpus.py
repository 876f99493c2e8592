"""A corpus of student submissions, made from the release notebook as students make them.

Each entry replaces only the bodies of the three stubs (the lines `# YOUR CODE HERE` and
`raise NotImplementedError(...)`), optionally adds code above a stub's `def`/`class` in
the same cell (helpers, prints, mistakes) or extra cells after it; every other cell
stays exactly as released. What each entry must get is in expected.py beside this file;
the engine's tests take both through tests/helpers.py.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# The notebook names the corpus's entries define (through the stubs below): a question whose
# public check needs another name (one a TA added) keeps its stub in every entry.
DEFINES = ("lookup", "retrieve", "AttentionTest")
# How to find each stub's cell, in otter's release and in nbgrader's (whose stubs differ).
STUBS = {"lookup": "def lookup(", "retrieve": "def retrieve(",
         "forward": "def forward(self, img, image_database):"}


@dataclass
class Spec:
    """One submission: new stub bodies (None keeps the stub), code above, cells after."""

    lookup: str | None = None
    retrieve: str | None = None
    forward: str | None = None
    above: dict[str, str] = field(default_factory=dict)  # stub -> code above its def/class
    after: dict[str, str] = field(default_factory=dict)  # stub -> an extra cell after it


def make_notebook(release: Path, spec: Spec) -> nbformat.NotebookNode:
    """The release notebook with `spec`'s bodies in place of the stubs."""
    nb = nbformat.read(release, as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        for stub, marker in STUBS.items():
            if cell.cell_type != "code" or marker not in cell.source or "# YOUR CODE HERE" not in cell.source:
                continue
            body = getattr(spec, stub)
            if body is not None:
                lines = cell.source.split("\n")
                i = next(n for n, line in enumerate(lines) if "# YOUR CODE HERE" in line)
                indent = re.match(r"\s*", lines[i]).group(0)
                new = textwrap.indent(textwrap.dedent(body).strip("\n"), indent).split("\n")
                lines[i:i + 2] = new  # the comment and the raise
                cell.source = "\n".join(lines)
            if stub in spec.above:
                cell.source = textwrap.dedent(spec.above[stub]).strip("\n") + "\n\n" + cell.source
            if stub in spec.after:
                cells.append(nbformat.v4.new_code_cell(textwrap.dedent(spec.after[stub]).strip("\n")))
    nb.cells = cells
    return nb


# --- bodies ------------------------------------------------------------------------

REF_LOOKUP = """
scores = Q.float() @ K.float().transpose(-2, -1)
return F.softmax(scores, dim=-1) if soft else scores
"""
REF_RETRIEVE = "return weights @ V"
REF_FORWARD = """
X_q = self.img_mlp(img)
X_v = self.img_mlp(image_database)
X_k = X_v
attn_output, attn_output_weights = self.mha(X_q, X_k, X_v)
output = torch.bmm(attn_output_weights, image_database)
return output, attn_output_weights
"""


def _forward(mha_call: str = "self.mha(X_q, X_k, X_v)", retrieval: str =
             "torch.bmm(attn_output_weights, image_database)", extra: str = "") -> str:
    return f"""
X_q = self.img_mlp(img)
X_v = self.img_mlp(image_database)
X_k = X_v
attn_output, attn_output_weights = {mha_call}
{extra}
output = {retrieval}
return output, attn_output_weights
"""


CORRECT: dict[str, Spec] = {
    "c01_at_operator": Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD),
    "c02_matmul_mT": Spec("""
        s = torch.matmul(Q.float(), K.float().mT)
        if soft:
            s = torch.softmax(s, -1)
        return s
        """, "return torch.matmul(weights, V)",
        _forward(retrieval="retrieve(attn_output_weights, image_database)")),
    "c03_mm_bmm_switch": Spec("""
        Q, K = Q.float(), K.float()
        if Q.dim() == 2:
            scores = torch.mm(Q, K.t())
        else:
            scores = torch.bmm(Q, K.transpose(1, 2))
        if soft:
            return F.softmax(scores, dim=scores.dim() - 1)
        return scores
        """, """
        if weights.dim() == 2:
            return torch.mm(weights, V)
        return torch.bmm(weights, V)
        """, _forward(mha_call="self.mha(query=X_q, key=X_k, value=X_v, need_weights=True)")),
    "c04_einsum": Spec("""
        scores = torch.einsum("...qd,...kd->...qk", Q.float(), K.float())
        return scores.softmax(dim=-1) if soft else scores
        """, 'return torch.einsum("...qk,...kd->...qd", weights, V)',
        _forward(retrieval='torch.einsum("bqk,bkd->bqd", attn_output_weights, image_database)')),
    "c05_stable_softmax": Spec("""
        scores = (Q @ K.transpose(-2, -1)).float()
        if not soft:
            return scores
        shifted = scores - scores.max(dim=-1, keepdim=True).values
        e = torch.exp(shifted)
        return e / e.sum(dim=-1, keepdim=True)
        """, REF_RETRIEVE, REF_FORWARD),
    "c06_permute": Spec("""
        Kt = K.permute(1, 0) if K.dim() == 2 else K.permute(0, 2, 1)
        scores = torch.matmul(Q.to(torch.float32), Kt.to(torch.float32))
        if soft:
            scores = nn.Softmax(dim=-1)(scores)
        return scores
        """, "return (weights.unsqueeze(-1) * V.unsqueeze(-3)).sum(dim=-2)", REF_FORWARD),
    "c07_cast_at_the_end": Spec("""
        scores = Q @ K.transpose(-1, -2)
        scores = scores.float()
        if soft == True:
            return torch.nn.functional.softmax(scores, -1)
        else:
            return scores
        """, REF_RETRIEVE, _forward(mha_call="self.mha(X_q, X_k, X_v, None, True)")),
    "c08_own_helper": Spec(
        "return _normalise(_dot(Q, K)) if soft else _dot(Q, K)", REF_RETRIEVE, REF_FORWARD,
        above={"lookup": """
            def _dot(a, b):
                return torch.matmul(a.float(), b.float().transpose(-2, -1))

            def _normalise(x):
                return F.softmax(x, dim=-1)
            """}),
    "c09_prints_and_plots": Spec("""
        print("lookup called with", Q.shape, K.shape)
        scores = torch.matmul(Q.float(), K.float().transpose(-2, -1))
        return F.softmax(scores, dim=-1) if soft else scores
        """, """
        out = weights @ V
        print("retrieved", out.shape)
        return out
        """, REF_FORWARD,
        after={"lookup": """
            w = lookup(torch.randn(3, 4), torch.randn(5, 4))
            print(w.sum(-1))
            plt.figure(figsize=(3, 2))
            plt.plot(w[0].numpy())
            plt.show()
            """}),
    "c10_keyword_mha_need_weights": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        mha_call="self.mha(query=X_q, key=X_k, value=X_v, need_weights=True, average_attn_weights=True)",
        retrieval="attn_output_weights @ image_database",
        extra="assert attn_output_weights.shape[-1] == image_database.shape[1]")),
    "c11_double_internally": Spec("""
        scores = torch.matmul(Q.double(), K.double().transpose(-2, -1))
        out = torch.softmax(scores, dim=-1) if soft else scores
        return out.float()
        """, "return torch.matmul(weights.to(V.dtype), V)", REF_FORWARD),
}

WRONG: dict[str, Spec] = {
    "w01_softmax_wrong_dim": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.softmax(scores, dim=0) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w02_softmax_in_hard_mode": Spec(
        "return F.softmax(Q.float() @ K.float().transpose(-2, -1), dim=-1)",
        REF_RETRIEVE, REF_FORWARD),
    "w03_no_softmax": Spec("return Q.float() @ K.float().transpose(-2, -1)",
                           REF_RETRIEVE, REF_FORWARD),
    "w04_scaled_by_sqrt_d": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1) / Q.shape[-1] ** 0.5
        return F.softmax(scores, dim=-1) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w05_weights_transposed": Spec("""
        scores = K.float() @ Q.float().transpose(-2, -1)
        return F.softmax(scores, dim=-2) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w06_retrieve_mean": Spec(REF_LOOKUP,
                              "return V.mean(dim=-2, keepdim=True).expand(*weights.shape[:-1], V.shape[-1])",
                              REF_FORWARD),
    "w07_integer_scores": Spec("""
        scores = Q @ K.transpose(-2, -1)
        return F.softmax(scores, dim=-1) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w08_forward_returns_mha_output": Spec(REF_LOOKUP, REF_RETRIEVE,
                                           _forward(retrieval="attn_output")),
    "w09_keys_from_query": Spec(REF_LOOKUP, REF_RETRIEVE,
                                _forward(mha_call="self.mha(X_q, X_q, X_v)")),
    "w10_average_attn_weights_false": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        mha_call="self.mha(X_q, X_k, X_v, average_attn_weights=False)")),
    "w11_weights_detached": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        extra="attn_output_weights = attn_output_weights.detach()")),
    "w12_uniform_weights": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(extra=(
        "attn_output_weights = torch.full_like(attn_output_weights, "
        "1.0 / image_database.shape[1])"))),
    "w13_returns_query_image": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(retrieval="img")),
    "w14_only_lookup_done": Spec(REF_LOOKUP, None, None),
    "w15_stubs_left_in": Spec(),
    "w16_cell_raises_before_def": Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                       above={"lookup": "print(image_database.shape)"}),
    "w17_lookup_2d_only": Spec("""
        scores = torch.mm(Q.float(), K.float().t())
        return F.softmax(scores, dim=1) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w18_retrieve_wrong_order": Spec(REF_LOOKUP, "return V.transpose(-2, -1) @ weights.transpose(-2, -1)",
                                     REF_FORWARD),
    # degenerate code that ignores its inputs: it may earn the shape points, nothing more
    "w19_constant_lookup": Spec("return torch.ones(*Q.shape[:-1], K.shape[-2]) / K.shape[-2]",
                                REF_RETRIEVE, REF_FORWARD),
    "w20_forward_ignores_model": Spec(REF_LOOKUP, REF_RETRIEVE, """
        n = image_database.shape[1]
        attn_output_weights = torch.full((img.shape[0], 1, n), 1.0 / n)
        output = torch.bmm(attn_output_weights, image_database)
        return output, attn_output_weights
        """),
    # measured mistakes that passed every public check before issue 11
    "w21_scaled_only_when_soft": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.softmax(scores / Q.shape[-1] ** 0.5, dim=-1) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w22_forward_own_lookup": Spec(REF_LOOKUP, REF_RETRIEVE, """
        X_q = self.img_mlp(img)
        X_k = self.img_mlp(image_database)
        attn_output_weights = lookup(X_q, X_k)
        output = retrieve(attn_output_weights, image_database)
        return output, attn_output_weights
        """),
    # mistakes whose hidden message used to name the wrong cause (issue 11)
    "w23_scaled_only_when_hard": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.softmax(scores, dim=-1) if soft else scores / Q.shape[-1] ** 0.5
        """, REF_RETRIEVE, REF_FORWARD),
    "w24_softmax_over_queries": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.softmax(scores, dim=-2) if soft else scores
        """, REF_RETRIEVE, REF_FORWARD),
    "w25_retrieve_2d_only": Spec(REF_LOOKUP, "return torch.mm(weights, V)", REF_FORWARD),
    # code that runs on one kind of machine only (issue 12): the same score on every machine
    "w26_forward_cpu_only": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        extra="attn_output_weights = attn_output_weights + torch.zeros(attn_output_weights.shape)")),
    "w27_forward_cuda_only": Spec(REF_LOOKUP, REF_RETRIEVE, "img = img.cuda()\n" + REF_FORWARD),
    # verdicts the job could bend before issue 19
    "w28_optimizer_patched": Spec(REF_LOOKUP, REF_RETRIEVE, """
        with torch.no_grad():
            X_q = self.img_mlp(img)
            X_v = self.img_mlp(image_database)
        attn_output, attn_output_weights = self.mha(X_q, X_v, X_v)
        return torch.bmm(attn_output_weights, image_database), attn_output_weights
        """, after={"forward": """
        _RealAdam = torch.optim.Adam
        torch.optim.Adam = lambda params, lr, **kw: _RealAdam(params, lr=3 * lr, **kw)
        """}),
    "w29_zeroed_model": Spec(None, None, """
        n = image_database.shape[1]
        attn_output_weights = torch.full((img.shape[0], 1, n), 1.0 / n) + 0 * self.img_mlp(img).sum()
        return torch.bmm(attn_output_weights, image_database), attn_output_weights
        """, after={"forward": """
        _given_init = AttentionTest.__init__
        def _zeroed_init(self, *args, **kwargs):
            _given_init(self, *args, **kwargs)
            with torch.no_grad():
                for p in self.parameters():
                    p.zero_()
        AttentionTest.__init__ = _zeroed_init
        """}),
    "w30_hard_max_lookup": Spec("""
        scores = Q.float() @ K.float().transpose(-2, -1)
        return F.one_hot(scores.argmax(dim=-1), scores.shape[-1]).float()
        """, REF_RETRIEVE, REF_FORWARD),
    # wrong outputs whose public training check printed ✅ before issue 19
    "w31_second_softmax": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        extra="attn_output_weights = torch.softmax(attn_output_weights, dim=-1)")),
    "w32_sharpened_weights": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        extra=("attn_output_weights = attn_output_weights ** 2 / "
               "(attn_output_weights ** 2).sum(-1, keepdim=True)"))),
    "w33_flipped_database": Spec(REF_LOOKUP, REF_RETRIEVE, _forward(
        retrieval="torch.bmm(attn_output_weights, image_database.flip(1))")),
    # the weights squeezed to (B, 100): forward's checks fail, training (the output) does not
    "w35_weights_squeezed": Spec(REF_LOOKUP, REF_RETRIEVE, """
        X_q = self.img_mlp(img)
        X_v = self.img_mlp(image_database)
        attn_output, attn_output_weights = self.mha(X_q, X_v, X_v)
        return torch.bmm(attn_output_weights, image_database), attn_output_weights.squeeze(1)
        """),
    # right values, but the keys' embedding gets no gradient: training is not the lab's
    "w34_keys_detached": Spec(REF_LOOKUP, REF_RETRIEVE, """
        X_q = self.img_mlp(img)
        X_v = self.img_mlp(image_database).detach()
        attn_output, attn_output_weights = self.mha(X_q, X_v, X_v)
        return torch.bmm(attn_output_weights, image_database), attn_output_weights
        """),
}

SUBMISSIONS: dict[str, Spec] = {**CORRECT, **WRONG}


def write_corpus(release: Path, out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """Write the corpus notebooks (or the named ones) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(SUBMISSIONS):
        path = out_dir / f"{name}.ipynb"
        nbformat.write(make_notebook(release, SUBMISSIONS[name]), path)
        paths.append(path)
    return paths


def public_lines(ns: dict) -> dict[str, list[str]]:
    """The public checks' lines, by question, for a notebook's definitions `ns` (what
    `grader.check` prints, without the marks; a missing definition gets its own line)."""
    from attention_basics import public_checks

    return {q: (public_checks.failures(q, ns[name]) if name in ns
                else [f"{q}: `{name}` is not defined yet: run the cell that defines it first"])
            for q, name in public_checks.QUESTIONS.items()}
