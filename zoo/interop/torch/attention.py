"""``torch.nn.MultiheadAttention`` <-> ``zoo.attention.MultiHeadAttention``.

Glossary: D query (model) width, Dkv key/value input width, N heads, H head dim,
E = N * H (torch's ``embed_dim``).

    torch                          zoo
    in_proj_weight [3E, D]         query/kernel [D, N, H], key/kernel, value/kernel
      (or q_proj_weight [E, D], k_proj_weight [E, Dkv], v_proj_weight [E, Dkv]
       when torch's kdim/vdim differ from embed_dim)
    in_proj_bias [3E]              query/bias [N, H], key/bias, value/bias
    out_proj.weight [D, E]         out/kernel [N, H, D]
    out_proj.bias [D]              out/bias [D]

torch splits E into heads head-major (rows n*H .. n*H + H - 1 are head n),
which is the row-major order of zoo's [N, H] axes, so a reshape is all it takes.
Both scale scores by 1/sqrt(H).
"""

from __future__ import annotations

from zoo.interop.torch.links import (
    Link,
    Shapes,
    bias_form,
    check_covered,
    kernel_form,
    one,
    packed,
    place,
    require,
)

_PROJECTIONS = ("query", "key", "value")


def attention_links(zoo: Shapes, torch: Shapes, where: str) -> list[Link]:
    """Links of one attention module; ``zoo`` holds its params, ``torch`` its state_dict."""
    require(zoo, [f"{p}/kernel" for p in (*_PROJECTIONS, "out")], where,
            "a zoo.attention.MultiHeadAttention")
    if len(zoo["query/kernel"]) != 3:  # e.g. a scanned stack's [L, D, N, H]
        raise ValueError(f"the zoo attention at {place(where)} has a query kernel of shape "
                         f"{list(zoo['query/kernel'])}; expected [D, N, H]")
    _, n, _ = zoo["query/kernel"]  # [D, N, H]
    _, k, _ = zoo["key/kernel"]  # [Dkv, K, H]
    if k != n:
        raise ValueError(f"the zoo attention at {place(where)} has {k} key/value heads for {n} "
                         "query heads (grouped-query); torch.nn.MultiheadAttention has one "
                         "key/value head per query head")
    kernels = [(f"{p}/kernel", kernel_form(zoo[f"{p}/kernel"])) for p in _PROJECTIONS]
    if "in_proj_weight" in torch or "q_proj_weight" not in torch:
        links = [packed("in_proj_weight", kernels)]
    else:  # torch keeps separate weights when kdim or vdim differ from embed_dim
        links = [one(f"{p[0]}_proj_weight", path, form)
                 for p, (path, form) in zip(_PROJECTIONS, kernels, strict=True)]
    links.append(one("out_proj.weight", "out/kernel", kernel_form(zoo["out/kernel"], 2)))
    if "query/bias" in zoo:  # use_bias is one flag in both: all projections or none
        links.append(packed("in_proj_bias", [(f"{p}/bias", bias_form(zoo[f"{p}/bias"]))
                                             for p in _PROJECTIONS]))
        links.append(one("out_proj.bias", "out/bias", bias_form(zoo["out/bias"])))
    check_covered(zoo, links, where, "torch.nn.MultiheadAttention")
    return links
