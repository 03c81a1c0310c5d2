//! Order lifecycle, risk and kill-switch behaviour of the engine on small hand-made bars.
