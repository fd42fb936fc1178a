// A JavaScript handler that does nothing: acknowledges every batch. `sluice bench` measures the
// cost of a fresh instance of a large (engine-sized) component with it.
export function handle(_batch) {}
