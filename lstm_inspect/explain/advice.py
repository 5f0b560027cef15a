"""From explaining to advising: how to write this setup in the user's Keras, whether a stateful
layer fits it, and how its data must be laid out (row j+B continues row j).

Each item is short and tied to what this setup shows; `data` (what `layout.continuity` found
in the user's own rows) adds what their file shows. Pure: no torch, no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.backwards import padding_only, stacked_backwards
from ..core.choices import Backend, KerasVersion, ResetKind
from ..core.facts import facts_for
from ..core.lengths import frames_caveat
from ..core.replicas import per_replica_batch
from ..core.spec import Spec
from ..core.words import Terms, plural
from ..core.workflow import Kind, distinct
from ..data.datafile import Continuity, Series
from .porting import listed, port_notes, returned_states, state_indices


@dataclass(frozen=True)
class Advice:
    # What it is about: "batch size", "reset", "set states", "by hand", "stateful?", "layout", "padding",
    # "go_backwards", "port", "data"
    key: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text}


def advise(spec: Spec, data: Continuity | None = None, terms: Terms = Terms()) -> list[Advice]:
    """The advice for `spec` (and for the user's data, when read)."""
    found = _api(spec)
    found.append(_stateful_or_not(spec, terms))
    if spec.stateful:
        found.append(_layout(spec, terms))
    if spec.padded:
        found.append(_padding(spec, terms))
    if spec.go_backwards:
        found.append(_backwards(spec))
    found.append(Advice("port", port_notes(spec)))
    chosen = sorted({op.slots for op in distinct(spec.workflow or ()) if op.slots})
    if chosen:
        found.append(_slot_resets(spec, chosen[0]))
    if data is not None:
        found.append(_data(spec, data))
    return found


def _api(spec: Spec) -> list[Advice]:
    b = spec.batch_size
    f = ", ".join(str(size) for size in spec.step_shape)  # one timestep: F, or a ConvLSTM2D's H, W, C
    t = spec.timesteps
    layer = spec.cell.keras_name
    built = f"{layer}(filters, kernel_size" if spec.cell.convolutional else f"{layer}(units"
    if spec.cell.convolutional and spec.padding == "same":
        built += ', padding="same"'
    if spec.data_format == "channels_first":
        built += ', data_format="channels_first"'

    if not spec.stateful:
        items: list[Advice] = []  # a stateless layer has no state to fix, reset or set
    elif spec.keras == KerasVersion.TWO:
        items = [Advice("reset", "tf-keras resets every stateful layer at once: model.reset_states() (or "
                                 "layer.reset_states() for one)"),
                 Advice("set states", _set_states_2(spec))]
        items.insert(0, Advice("batch size", f"fix the batch size on the first layer: {built}, "
                                             f"stateful=True, batch_input_shape=({b}, {t}, {f})), or "
                                             f"keras.Input(batch_shape=({b}, {t}, {f})); without it tf-keras "
                                             "raises \"If a RNN is stateful, it needs to know its batch size\""))
    else:
        items = [Advice("reset", "Keras 3's Model has no reset_states(): reset each recurrent layer, "
                                 "for layer in model.layers: if isinstance(layer, keras.layers.RNN): "
                                 "layer.reset_state() (a Bidirectional's: layer.forward_layer and "
                                 "layer.backward_layer)"),
                 Advice("set states", _set_states_3(spec))]
        items.insert(0, Advice("batch size", f"fix the batch size with keras.Input(batch_shape=({b}, {t}, {f})) "
                                             f"or keras.Input(shape=({t}, {f}), batch_size={b}): without it Keras "
                                             "raises \"When using `stateful=True` in a RNN, the batch size must be "
                                             f"static\"; Keras 3 refuses {layer}(batch_input_shape=...) "
                                             "(\"Unrecognized keyword arguments passed to " + layer + "\")"))
    if spec.replicas > 1:
        share = per_replica_batch(spec)
        items[0] = Advice("batch size", f"build the model inside strategy.scope() for the per-replica batch, "
                                        f"keras.Input(batch_shape=({share}, {t}, {f})), and give fit, evaluate "
                                        f"and predict the global batch_size={b}; a model built for the global "
                                        f"batch raises \"Expected batch size: {b} - Received batch size: {share}\"")
    items.append(Advice("by hand", _by_hand(spec, built)))
    return items


def _slot_resets(spec: Spec, slots: tuple[int, ...]) -> Advice:
    """Zeroing some slots only: reset_state() takes no slots, in either Keras."""
    named = f"[{', '.join(map(str, slots))}]"
    image = ", 1, 1" if spec.cell.convolutional else ""
    each = ("for rnn in (layer.forward_layer, layer.backward_layer): for state in rnn.states:" if spec.bidirectional
            else "for state in layer.states:")
    torch_side = ("h, c = h * (1 - done), c * (1 - done)" if len(spec.cell.state_names) == 2
                  else "h = h * (1 - done)")
    return Advice("slot resets", f"reset_state() zeroes every slot and takes none to choose: to zero slots {named} "
                                 f"only (the streams whose sequence ended), keep = np.ones((B, 1{image}), "
                                 f"\"float32\"); keep[{named}] = 0; then {each} state.assign(state * keep); in "
                                 f"PyTorch, {torch_side}, done 1 at those slots and shaped (1, B, 1{image})")


def _set_states_3(spec: Spec) -> str:
    which = ("layer.forward_layer.states[i].assign(value) and layer.backward_layer.states[i]" if spec.bidirectional
             else "layer.states[i].assign(value)")
    return (f"reset_state() takes no argument in Keras 3 (TypeError): set chosen states with {which}, "
            f"{state_indices(spec)}")


def _set_states_2(spec: Spec) -> str:
    names = returned_states(spec)
    half = " (a Bidirectional gives the first half to its forward layer)" if spec.bidirectional else ""
    return (f"give a stateful layer chosen states with layer.reset_states(states=[{', '.join(names)}]){half} (numpy "
            f"arrays of shape {_state_shape(spec)})")


def _by_hand(spec: Spec, built: str) -> str:
    names = returned_states(spec)
    layer = f"Bidirectional({built}, return_state=True))" if spec.bidirectional else f"{built}, return_state=True)"
    if spec.bidirectional:
        returned = (" returns the final states after the output, forward then backward "
                    f"([output, {', '.join(names)}]); pass them all back as initial_state={listed(names)} (the first "
                    "half goes to the forward layer)")
    elif len(names) == 1:
        returned = f" returns the final state after the output; pass it back as initial_state={listed(names)}"
    else:
        returned = f" returns the final states after the output; pass them back as initial_state={listed(names)}"
    per_layer = f", each of the {spec.layers} layers its own," if spec.layers > 1 else ""
    taking = "it as an input" if len(names) == 1 else "them as inputs"
    hand = (f"carry states yourself with a stateless layer: {layer}{returned}{per_layer} in the next call (a model "
            f"taking {taking})")
    if spec.stateful and not facts_for(spec).carries and spec.backend == Backend.JAX:
        hand = (f"on jax stateful=True carries nothing inside fit, evaluate and predict: {hand}, or run the "
                "torch or TensorFlow backend")
    return hand


def _state_shape(spec: Spec) -> str:
    """A slot's h or c, batched, as the set-states advice names it."""
    if spec.cell.convolutional:
        height, width = (spec.state_shape[1:] if spec.data_format == "channels_first" else spec.state_shape[:-1])
        image = f"{height}, {width}"
        return f"(B, filters, {image})" if spec.data_format == "channels_first" else f"(B, {image}, filters)"
    return "(B, units)"


def _stateful_or_not(spec: Spec, terms: Terms) -> Advice:
    n, t, b = spec.samples, spec.timesteps, spec.batch_size
    if not spec.stateful:
        return Advice("stateful?", f"stateless fits when each of the {n:,} samples is one whole sequence of {t:,} "
                                   f"steps: every sample starts from zeros, and the batch size {b:,} only changes "
                                   "the optimisation, not what the layer sees. Stateful pays only when long series "
                                   f"are cut into windows of {t:,} steps: then {terms.name('stateful')} with B = the "
                                   "number of series run side by side, shuffle off, and a reset where a series "
                                   "ends. To run a model trained so over a long sequence in pieces (streaming, "
                                   "generation), predict on a stateful twin for batch 1, the weights copied "
                                   "(twin(batch_size=1, stateful=True)): each piece continues the one before, as "
                                   "one stateless run over the whole sequence would; reset_state() where it ends")
    shuffled = [op for op in distinct(spec.plan) if op.kind == Kind.FIT and op.fit_shuffle(spec.shuffle)]
    slots = ("the 1 slot is 1 series, its state" if b == 1
             else f"the {b:,} slots are {b:,} series run side by side, each slot's state")
    text = (f"stateful fits when each row is a window of a longer series: {slots} flowing from one window to the "
            f"next. If each of the {n:,} samples is a whole sequence, use a stateless layer: here a state would flow "
            "into an unrelated sequence")
    if shuffled:
        text += f"; turn shuffle off ({terms.setting('shuffle', False)}): shuffling breaks every series"
    if spec.reset.kind == ResetKind.NEVER and not spec.reset.predict:
        text += "; and reset where a series ends (a callback, or reset_state() between series)"
    return Advice("stateful?", text)


def _layout(spec: Spec, terms: Terms) -> Advice:
    b, t = spec.batch_size, spec.timesteps
    per_slot = spec.samples // b
    not_next = "" if b == 1 else ", not row j+1"
    text = (f"row j+{b:,} must continue row j (slot i of batch k+1 continues slot i of batch k){not_next}: with "
            f"{spec.samples:,} rows each slot runs {plural(per_slot, 'window')} of one series. From long series, "
            f"lstm_inspect.layout.stateful_layout(series, timesteps={t}, batch_size={b}) orders the windows so and "
            "returns where each row came from; reset every K batches where each series holds K windows "
            f"({terms.setting('reset', 'every:K')}), or once per epoch when it spans the epoch")
    return Advice("layout", text)


def _padding(spec: Spec, terms: Terms) -> Advice:
    """Padded samples: the mask in Keras, and the same run in a PyTorch port (measured: core/lengths.py)."""
    masking, zero = f"keras.layers.Masking(mask_value={spec.mask_value!r})", spec.mask_value == 0.0
    padding = "the zeros" if zero else f"the steps of {spec.mask_value!r}"
    embedding_too = zero and not spec.cell.convolutional  # mask_zero=True: an Embedding's mask, of token ids
    if not spec.mask:
        embedding = " (or mask_zero=True in an Embedding; " if embedding_too else " ("
        return Advice("padding", f"mask the padding: {masking} before the recurrent layer{embedding}"
                                 f"{terms.setting('mask', True)}){frames_caveat(spec)}: unmasked, {padding} move the "
                                 f"state; a PyTorch port of this unmasked model runs the padded x as it is, {padding} "
                                 "included, with no packing")
    keras_side = (f"keep {masking} first" + " (or mask_zero=True in an Embedding)" * embedding_too
                  + ": each sample's result is its state at its last valid step, which return_state=True gives and "
                  "return_sequences=False outputs")
    final = "h_n[-2] (forward) and h_n[-1] (backward)" if spec.bidirectional else "h_n[-1]"
    if padding_only(spec, "post", wholly_masked=False):
        last = "not out[:, -1], which is padding"
    else:
        padded = "pre-padded" if spec.data_mask is None else "masked"
        last = ("after moving each row's valid steps to the front (a packed sequence holds its first `length` "
                f"steps; unpacked, a {padded} run goes through {padding} first)")
    if spec.data_mask is not None and spec.data_mask.layout.empty:
        last += ("; pack only the rows with a valid step (a length of 0 raises) and give each wholly masked row "
                 "its initial state back, as Keras's mask holds it")
    states = " and c_n" if len(spec.cell.state_names) == 2 else ""
    carried = (f"; carry each slot's h_n{states}, detached, into the next batch's slot" if spec.stateful
               and facts_for(spec).carries else "")
    if spec.cell.convolutional:  # torch has no ConvLSTM2D: this package's takes the mask itself
        return Advice("padding", f"{keras_side}; in a PyTorch port, lstm_inspect.ConvLSTM2D(...)(x, hx, mask=mask) "
                                 "holds the states at the masked steps as Keras does, mask (batch, T) True where a "
                                 f"frame is kept{carried}")
    port = ("in a PyTorch port, nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, "
            f"enforce_sorted=False) gives the same: read each sample's final state from {final}, {last}{carried}")
    return Advice("padding", f"{keras_side}; {port}")


def _backwards(spec: Spec) -> Advice:
    """go_backwards in a PyTorch port (measured: core/backwards.py)."""
    text = ("in a PyTorch port, run the layer on x.flip(1) and keep its outputs in that order (Keras does not flip "
            "them back)")
    if spec.padded and spec.mask:
        text += ("; padded, reverse each row's valid steps alone and pack those (the padding held, as Keras's mask "
                 "holds it): the state then ends, as Keras's, after each row's first valid step")
    if stacked_backwards(spec):
        text += ("; stacked, flip each layer's input again: nn.LSTM(num_layers=2) on a flipped x runs both layers "
                 "backwards, where Keras's second go_backwards layer runs in time order")
    if spec.stateful and facts_for(spec).carries:
        text += "; the h_n carried on is then the state after x[:, 0]"
    return Advice("go_backwards", text)


def _data(spec: Spec, data: Continuity) -> Advice:
    b, t = spec.batch_size, spec.timesteps
    carries = (f"a stateful layer carries row j into row j+{b:,}" if spec.stateful
               else "a stateless layer carries nothing from row to row")
    if data.stride is not None:
        s = data.stride
        text = (f"your {data.rows:,} rows are sliding windows of one series, each {s:,} step{'s' * (s > 1)} on from "
                f"the row before (x[j+1, :-{s}] == x[j, {s}:] for every j): row j+1 continues row j, while {carries}")
        if spec.stateful and b * s == t:
            text += f", which starts exactly where row j ends ({b:,} x {s:,} = {t:,} steps): the carry follows the data"
        elif spec.stateful:
            rereads = b * s < t  # pragma: no mutate (b * s == t took the branch above: < and <= agree here)
            text += (f", {plural(b * s, 'step')} on while a window holds {t:,}: the carry "
                     f"{'re-reads' if rereads else 'skips'} steps. Sliding windows want a stateless layer; to "
                     "carry state, cut back-to-back windows with stateful_layout")
        return Advice("data", text)
    if data.slot_stride is not None:
        s = data.slot_stride
        text = (f"row j+{b:,} of your data is row j moved {plural(s, 'step')} on (x[j+{b}, :-{s}] == x[j, {s}:]): "
                "each slot runs one series of overlapping windows, so "
                + (("the carry follows it" if s == t else f"the carry re-reads {plural(t - s, 'step')} of each window")
                   if spec.stateful
                   else "a stateful layer would carry each slot along its series; a stateless one carries nothing"))
        return Advice("data", text)
    if data.series is not None:
        return Advice("data", _series_order(spec, data.rows, data.series))
    unseen = (f"no row of your {data.rows:,} overlaps the next or the one {b:,} rows on: the file cannot show whether "
              "its rows continue each other (back-to-back windows leave no overlap to see). ")
    if not spec.stateful:
        return Advice("data", unseen + "A stateless layer carries nothing from row to row: their order does not "
                                       "matter to it")
    return Advice("data", unseen + f"{carries[0].upper() + carries[1:]}: make row j+{b:,} the window after row j, "
                                   "as stateful_layout does")


def _series_order(spec: Spec, rows: int, series: Series) -> str:
    """Rows in series order: each series' sliding windows one after another."""
    b, t, s = spec.batch_size, spec.timesteps, series.stride
    count = rows // series.windows if series.windows else None
    what = (f"{count:,} series of {series.windows:,} sliding windows each" if count
            else "sliding windows of several series")
    text = (f"{series.overlapping:,} of your {rows - 1:,} neighbouring rows overlap, row j+1 being row j moved "
            f"{plural(s, 'step')} on (x[j+1, :-{s}] == x[j, {s}:]): your rows are {what}, one series after another")
    if not spec.stateful:
        return text + ". A stateless layer carries nothing from row to row: their order does not matter to it"
    text += (f". A stateful layer carries row j into row j+{b:,}, not into the next window of its series: put the "
             "series side by side, one per slot")
    if count:
        text += (f" (batch_size={count}, and x.reshape({count}, {series.windows}, {t}, -1).swapaxes(0, 1)"
                 f".reshape(-1, {t}, {'*x.shape[2:]' if spec.frame else 'x.shape[-1]'}) makes row j+{count} the "
                 "window after row j)")
    return text + (f"; the windows overlap ({plural(s, 'step')} on while a window holds {t:,}), so even then the "
                   "carry re-reads steps: cut back-to-back windows from each series with stateful_layout")
