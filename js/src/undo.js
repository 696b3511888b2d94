// Undo/redo stack of committed edits. One entry = one user action (a drag, accept all...);
// it records every box it touched as {id, before, after} (null = box absent), so undo and
// redo are plain replays. The kernel keeps the authoritative history in the action log;
// this copy lets the canvas react at once, even while the kernel is busy.

export class UndoStack {
  constructor(limit = 200) {
    this.limit = limit;
    this.done = [];
    this.undone = [];
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  /** Record a committed edit; a new edit drops the redo branch. */
  push(changes) {
    if (!changes.length) return;
    this.done.push(changes.map((c) => ({ id: c.id, before: copy(c.before), after: copy(c.after) })));
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  /** The edit to revert (its changes; apply each `before`), or null. */
  undo() {
    const entry = this.done.pop();
    if (!entry) return null;
    this.undone.push(entry);
    return entry;
  }

  /** The edit to re-apply (apply each `after`), or null. */
  redo() {
    const entry = this.undone.pop();
    if (!entry) return null;
    this.done.push(entry);
    return entry;
  }

  clear() {
    this.done = [];
    this.undone = [];
  }

  /** A box created with a client id got its real id from the kernel: follow it. */
  remapId(oldId, newId) {
    for (const entry of [...this.done, ...this.undone]) {
      for (const c of entry) {
        if (c.id === oldId) c.id = newId;
        if (c.before && c.before.id === oldId) c.before.id = newId;
        if (c.after && c.after.id === oldId) c.after.id = newId;
      }
    }
  }
}

/** Apply one side ("before" or "after") of an entry to a box list; returns a new list. */
export function applyChanges(boxes, entry, side) {
  let out = boxes.slice();
  for (const c of side === "before" ? [...entry].reverse() : entry) {
    const target = c[side];
    const i = out.findIndex((b) => b.id === c.id);
    if (target === null) {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) {
      out[i] = copy(target);
    } else {
      out.push(copy(target));
    }
  }
  return out;
}

function copy(box) {
  return box ? { ...box, bbox: box.bbox.slice() } : null;
}
