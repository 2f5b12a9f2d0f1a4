"""Named presets: the paper's base and big models, and small ones for tests and CPU demos.

"Attention Is All You Need" (Table 3): base is d_model 512, 6 + 6 layers, 8
heads, d_ff 2048, P_drop 0.1; big is 1024, 16 heads, 4096, P_drop 0.3; both
post-LN with sinusoidal positions and one 37,000-token BPE vocabulary shared by
source and target, with the embeddings tied to the output projection. The LM
presets are modern decoder-only models (pre-LN, RMSNorm, rotary, SwiGLU, GQA);
``lm_small`` is sized to learn byte-level English on a CPU in minutes.
"""

from __future__ import annotations

from zoo.transformer.config import TransformerConfig

_PAPER_VOCAB = 37000

PRESETS: dict[str, TransformerConfig] = {
    "transformer_base": TransformerConfig(vocab_size=_PAPER_VOCAB),
    "transformer_big": TransformerConfig(
        vocab_size=_PAPER_VOCAB, d_model=1024, num_heads=16, d_ff=4096, dropout_rate=0.3),
    "transformer_small": TransformerConfig(
        vocab_size=1024, d_model=128, num_encoder_layers=3, num_decoder_layers=3,
        num_heads=4, d_ff=512, max_len=256),
    "transformer_tiny": TransformerConfig(
        vocab_size=64, d_model=32, num_encoder_layers=2, num_decoder_layers=2, num_heads=4,
        d_ff=64, max_len=64),
    "lm_small": TransformerConfig(
        vocab_size=256, d_model=128, num_encoder_layers=0, num_decoder_layers=4,
        num_heads=4, num_kv_heads=2, d_ff=384, dropout_rate=0.0, max_len=256,
        positional="rotary", norm_placement="pre", norm="rmsnorm", activation="swiglu",
        use_bias=False),
    "lm_tiny": TransformerConfig(
        vocab_size=64, d_model=32, num_encoder_layers=0, num_decoder_layers=2, num_heads=4,
        num_kv_heads=2, d_ff=64, dropout_rate=0.0, max_len=64, positional="rotary",
        norm_placement="pre", norm="rmsnorm", activation="swiglu", use_bias=False),
}
