"""Layers and their pieces: `modules` (the one `Module` base; Linear, Embedding, Dropout), `init`, `losses`,
`recurrent` (RNN, LSTM, GRU on `RecurrentBase`) with its paths `rows`, `lstm_columns` and `step`, and
`kernels/` (the whole-sequence forward/backward kernels per kind, row and column layout)."""
