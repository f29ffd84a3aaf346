"""Proof that the tests bite: ``python -m tests.mutants [NAME ...]``.

Makes each mutation below in the source (a wrong implementation a weak test would pass), runs
the test meant to catch it, restores the file, and prints a table: every row must say CAUGHT.
Not collected by pytest (it rewrites files); run it from the repo root after changing a test.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (name, file, code, the mutated code, the test that must fail)
MUTANTS = [
    (
        "associative scan: steps composed in the wrong order",
        "rnn_jax/layers/scan.py",
        "return a_l * a_e, a_l * b_e + b_l",
        "return a_l * a_e, a_e * b_l + b_e",
        "tests/test_linear_recurrence.py::test_parallel_equals_sequential_with_masks_reverse_and_gradients",
    ),
    (
        "linear cells: padding not frozen",
        "rnn_jax/layers/recurrence.py",
        "a, b = jnp.where(keep, a, 1.0).astype(h0.dtype), jnp.where(keep, b, 0.0).astype(h0.dtype)",
        "a, b = a.astype(h0.dtype), b.astype(h0.dtype)",
        "tests/test_models.py::test_padding_does_not_change_the_logit",
    ),
    (
        "minGRU: z keeps the state",
        "rnn_jax/cells/linear.py",
        "return 1.0 - z, z * candidate",
        "return z, (1.0 - z) * candidate",
        "tests/test_cells.py::test_matches_numpy_keras_equations",
    ),
    (
        "minLSTM: gates not normalized",
        "rnn_jax/cells/linear.py",
        "return f / total, i / total * candidate",
        "return f, i * candidate",
        "tests/test_cells.py::test_matches_numpy_keras_equations",
    ),
    (
        "RG-LRU: input not scaled by sqrt(1 - a^2)",
        "rnn_jax/cells/linear.py",
        "return jnp.exp(log_a), jnp.sqrt(-jnp.expm1(2.0 * log_a)) * (i * x_in)",
        "return jnp.exp(log_a), i * x_in",
        "tests/test_cells.py::test_matches_numpy_keras_equations",
    ),
    (
        "cuDNN: both biases added",
        "rnn_jax/cells/cudnn_lstm.py",
        "[kernel.T.ravel(), recurrent_kernel.T.ravel(), bias, jnp.zeros_like(bias)]",
        "[kernel.T.ravel(), recurrent_kernel.T.ravel(), bias, bias]",
        "tests/test_cudnn_lstm.py",
    ),
    (
        "residual stack: no residual",
        "rnn_jax/layers/recurrence.py",
        "x = x + (skip if sequences else last_real_step(skip, mask))",
        "x = x",
        "tests/test_recurrence.py::test_a_residual_stack_adds_each_upper_layers_input_to_its_output",
    ),
    (
        "RMSprop: epsilon outside the root",
        "rnn_jax/training/optimizers.py",
        "optax.rmsprop(learning_rate_fn, decay=RMSPROP_RHO, eps=epsilon)",
        "optax.rmsprop(learning_rate_fn, decay=RMSPROP_RHO, eps=epsilon, eps_in_sqrt=False)",
        "tests/test_optimizers.py::test_rmsprop_is_keras_rmsprop",
    ),
    (
        "Adam: epsilon inside the root",
        "rnn_jax/training/optimizers.py",
        "optax.adam(learning_rate_fn, b1=ADAM_B1, b2=ADAM_B2, eps=epsilon)",
        "optax.adam(learning_rate_fn, b1=ADAM_B1, b2=ADAM_B2, eps=0.0, eps_root=epsilon)",
        "tests/test_optimizers.py::test_adam_epsilon_differs_from_keras_by_the_documented_bound",
    ),
    (
        "Adam: beta2 0.99",
        "rnn_jax/training/optimizers.py",
        "ADAM_B1, ADAM_B2 = 0.9, 0.999",
        "ADAM_B1, ADAM_B2 = 0.9, 0.99",
        "tests/test_optimizers.py::test_adam_is_keras_adam_but_for_epsilon",
    ),
    (
        "best = latest",
        "rnn_jax/training/checkpointing.py",
        "return self.manager.best_step()",
        "return self.manager.latest_step()",
        "tests/test_train.py::test_the_best_epoch_is_the_argmax_of_validation_and_outlives_keep_checkpoints",
    ),
    (
        "best = worst",
        "rnn_jax/training/checkpointing.py",
        'return metrics["val_accuracy"], -metrics.get("val_loss", 0.0)',
        'return -metrics["val_accuracy"], metrics.get("val_loss", 0.0)',
        "tests/test_train.py::test_the_best_epoch_is_the_argmax_of_validation_and_outlives_keep_checkpoints",
    ),
    (
        "ties to the higher loss",
        "rnn_jax/training/checkpointing.py",
        'return metrics["val_accuracy"], -metrics.get("val_loss", 0.0)',
        'return metrics["val_accuracy"], metrics.get("val_loss", 0.0)',
        "tests/test_train.py::test_the_best_epoch_is_the_argmax_of_validation_and_outlives_keep_checkpoints",
    ),
    (
        "resume ignores the checkpoint",
        "rnn_jax/training/resumption.py",
        "return restored, step",
        "return fresh, step",
        "tests/test_train.py::test_train_and_evaluate_writes_the_workdir_and_resumes_identically[0]",
    ),
    (
        "psum instead of pmean of the gradients",
        "rnn_jax/training/train_steps.py",
        "grads = jax.lax.pmean(grads, axis_name)",
        "grads = jax.lax.psum(grads, axis_name)",
        "tests/test_train.py::test_a_two_device_step_averages_each_devices_own_dropout_gradients_on_both_paths",
    ),
    (
        "one dropout key for every device",
        "rnn_jax/training/train_steps.py",
        "key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))",
        "key = key",
        "tests/test_train.py::test_a_two_device_step_averages_each_devices_own_dropout_gradients_on_both_paths",
    ),
    (
        "shard_map with JAX's varying-axes check: the gradients summed over the devices",
        "rnn_jax/training/parallel.py",
        "check_vma=False,  # As pmap: see the module docstring.",
        "check_vma=True,",
        "tests/test_parallel.py",
    ),
    (
        "shard_map: every device reads the whole batch",
        "rnn_jax/training/parallel.py",
        "sharding = self.sharding(SHARDED)\n",
        "sharding = self.sharding(REPLICATED)\n",
        "tests/test_parallel.py",
    ),
    (
        "pmap's replicated value read from the wrong axis",
        "rnn_jax/training/parallel.py",
        "return shard.reshape(shard.shape[1:])",
        "return shard[0]",
        "tests/test_multihost.py::test_two_processes_under_shard_map_train_exactly_like_one_process_with_two_devices",
    ),
    (
        "resets: the scan keeps the state",
        "rnn_jax/layers/recurrence.py",
        "state = jax.tree.map(lambda new, old: jnp.where(restart, new, old), fresh_carry, state)",
        "state = state",
        "tests/test_check_cell.py::test_every_registered_cell_passes[lstm]",
    ),
    (
        "resets: the linear recurrence keeps a",
        "rnn_jax/layers/recurrence.py",
        "a = jnp.where(restart, 0.0, a).astype(h0.dtype)",
        "a = a.astype(h0.dtype)",
        "tests/test_check_cell.py::test_every_registered_cell_passes[mingru]",
    ),
    (
        "language model: no reset where a review starts",
        "rnn_jax/models/language_model.py",
        "reset = tokens == self.boundary_id",
        "reset = None",
        "tests/test_language_model.py::test_a_review_scores_the_same_alone_and_in_the_middle_of_a_stream",
    ),
    (
        "language model: the streams' carries not handed on",
        "rnn_jax/training/lm_steps.py",
        "(loss, (logits, carries)), grads = jax.value_and_grad(",
        "(loss, (logits, _)), grads = jax.value_and_grad(",
        "tests/test_language_model.py::test_a_training_step_hands_each_streams_carries_on_to_its_next_chunk",
    ),
    (
        "language model: padding scored in evaluation",
        "rnn_jax/training/lm_steps.py",
        'metrics = token_metrics(logits, targets, batch["mask"].astype(logits.dtype))',
        "metrics = token_metrics(logits, targets, jnp.ones(targets.shape, logits.dtype))",
        "tests/test_language_model.py::test_evaluation_scores_every_review_once_from_its_own_beginning",
    ),
    (
        "lab: a difficulty given up at the first rate that fails",
        "experiments/lib/lab/protocol.py",
        "for rate in [first, *(r for r in ranked if r != first)]:",
        "for rate in [first]:",
        "tests/test_lab.py::test_a_difficulty_fails_only_when_every_rate_fails_there",
    ),
    (
        "SimpleRNN ignores activation",
        "rnn_jax/cells/classic.py",
        "h = self.activation(xw + h @ self.recurrent_kernel)",
        "h = jnp.tanh(xw + h @ self.recurrent_kernel)",
        "tests/test_cells.py::test_matches_numpy_keras_equations",
    ),
    (
        "LSTM ignores activation in the cell update",
        "rnn_jax/cells/classic.py",
        "c = gate(f) * c + gate(i) * self.activation(g)",
        "c = gate(f) * c + gate(i) * jnp.tanh(g)",
        "tests/test_models.py::test_the_config_activation_reaches_every_layer_by_value",
    ),
    (
        "recurrent_init wired to kernel_init",
        "rnn_jax/models/cell_stack.py",
        "recurrent_kernel_init=get_initializer(recurrent_init),",
        "recurrent_kernel_init=get_initializer(kernel_init),",
        "tests/test_models.py::test_each_initializer_reaches_its_own_kernel",
    ),
    (
        "mask dropped above layer 0",
        "rnn_jax/layers/recurrence.py",
        "_, x = layer(x, mask)",
        "_, x = layer(x, mask if index == 0 else None)",
        "tests/test_recurrence.py::test_a_masked_pre_padded_stack_equals_each_sequence_alone",
    ),
    (
        "no dropout between layers",
        "rnn_jax/layers/recurrence.py",
        "x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)",
        "x = nn.Dropout(self.dropout_rate, deterministic=True)(x)",
        "tests/test_recurrence.py::test_dropout_between_layers_drops_and_scales_the_lower_layers_outputs",
    ),
    (
        "LSTM gradient cut through the recurrent kernel",
        "rnn_jax/cells/classic.py",
        "i, f, g, o = jnp.split(xw + h @ self.recurrent_kernel, 4, axis=-1)",
        "i, f, g, o = jnp.split(xw + h @ jax.lax.stop_gradient(self.recurrent_kernel), 4, axis=-1)",
        "tests/test_cells.py::test_gradient_matches_finite_differences_of_the_numpy_equations",
    ),
    (
        "mask_padding=False ignored",
        "rnn_jax/models/classifier.py",
        "pad_id=SentimentClassifier.pad_id if config.mask_padding else -1",
        "pad_id=SentimentClassifier.pad_id",
        "tests/test_models.py::test_without_mask_padding_the_model_reads_padding_like_a_word",
    ),
    (
        "a signal during validation forgotten",
        "rnn_jax/training/train.py",
        "            if interrupt.signum is not None:  # The one way out on SIGINT/SIGTERM.",
        "            if step % job.steps_per_epoch == 0:\n"
        "                interrupt.signum = None\n"
        "            if interrupt.signum is not None:  # The one way out on SIGINT/SIGTERM.",
        "tests/test_train.py::test_a_signal_during_validation_finishes_the_epoch_and_resumes_after_it",
    ),
    # The conformance check (rnn_jax.testing.check_cell) catches a flawed built-in cell.
    (
        "check_cell: the LSTM's step cuts the gradient through h",
        "rnn_jax/cells/classic.py",
        "i, f, g, o = jnp.split(xw + h @ self.recurrent_kernel, 4, axis=-1)",
        "i, f, g, o = jnp.split(xw + jax.lax.stop_gradient(h) @ self.recurrent_kernel, 4, -1)",
        "tests/test_check_cell.py::test_every_registered_cell_passes[lstm]",
    ),
    (
        "check_cell: __call__ is not step(project_inputs(x))",
        "rnn_jax/cells/base.py",
        "return self.step(carry, self.project_inputs(x_t))",
        "return self.step(carry, 0.5 * self.project_inputs(x_t))",
        "tests/test_check_cell.py::test_every_registered_cell_passes[rnn]",
    ),
    (
        "check_cell: the SimpleRNN's output dtype is not its carry's",
        "rnn_jax/cells/classic.py",
        "h = self.activation(xw + h @ self.recurrent_kernel)\n        return h, h\n",
        "h = self.activation(xw + h @ self.recurrent_kernel)\n"
        "        return h, h.astype(jnp.bfloat16)\n",
        "tests/test_check_cell.py::test_every_registered_cell_passes[rnn]",
    ),
    (
        "check_cell: a cell linear in h whose step is not",
        "rnn_jax/cells/linear.py",
        "h = a * h + b",
        "h = jnp.tanh(a * h + b)",
        "tests/test_check_cell.py::test_every_registered_cell_passes[mingru]",
    ),
    (
        "the time-series regressor left untrained",
        "experiments/timeseries.py",
        "None, length=steps)",
        "None, length=1)",
        "tests/test_experiments.py::test_timeseries_quick_every_cell_beats_the_naive_forecast",
    ),
    (
        "Keras twin GRU with reset_after=False",
        "experiments/keras_twin.py",
        "layers[config.cell](config.hidden_size),",
        "layers[config.cell](config.hidden_size, "
        "**({'reset_after': False} if config.cell == 'gru' else {})),",
        "tests/test_experiments.py::test_the_keras_twin_has_our_parameter_count",
    ),
]


def main(names: list[str]) -> int:
    caught = True
    print("| mutation | test | result |\n| --- | --- | --- |")
    for name, path, old, new, test in MUTANTS:
        if names and not any(n in name for n in names):
            continue
        source_file = REPO / path
        source = source_file.read_text()
        assert source.count(old) == 1, f"{name}: the code to mutate is not in {path} once"
        source_file.write_text(source.replace(old, new))
        try:
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            source_file.write_text(source)
        caught &= run.returncode != 0
        result = "CAUGHT (the test failed)" if run.returncode else "MISSED (the test passed)"
        print(f"| {name} | `{test}` | {result} |", flush=True)
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
