"""The cells: each recurrent cell written as its equations, and what every cell shares.

``base`` is the contract (``RecurrentCell``: ``project_inputs`` / ``step`` / Flax's ``__call__``)
and the initializer and activation names; ``classic`` the cells non-linear in h (SimpleRNN, LSTM,
GRU, MGU); ``linear`` the cells linear in h (minGRU, minLSTM, RG-LRU), which expose
``coefficients``; ``cudnn_lstm`` the LSTM's fused cuDNN kernel; ``registry`` the names configs
use (``register_cell``, ``module:Class``). A researcher editing a cell works here. Imports jax
and flax only: nothing else of rnn_jax.
"""
