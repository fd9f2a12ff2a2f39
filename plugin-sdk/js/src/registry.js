// The plugin class a component exports, registered by `exportPlugin`.

import { Aggregate } from "./aggregate.js";
import { Transform } from "./transform.js";

/** The exported class and who it says it is (`weir plugins` shows it). */
export class Registered {
  constructor(cls, name, version, description) {
    this.cls = cls;
    this.name = name;
    this.version = version;
    this.description = description;
  }

  get kind() {
    return this.cls.prototype instanceof Aggregate ? "aggregate" : "transform";
  }
}

let current = null;

function snake(name) {
  return name.replace(/(?<!^)(?=[A-Z])/g, "_").toLowerCase();
}

/** Marks the class the component exports (a `Transform` or an `Aggregate` subclass). `name`
 * defaults to the class name in snake case, `description` to the class's static `description`.
 * Call it once per plugin, after the class. */
export function exportPlugin(cls, { name, version = "0.1.0", description } = {}) {
  const ok = typeof cls === "function" && (cls.prototype instanceof Transform || cls.prototype instanceof Aggregate);
  if (!ok) throw new TypeError(`exportPlugin takes a Transform or an Aggregate subclass, not ${cls?.name ?? cls}`);
  current = new Registered(cls, name ?? snake(cls.name), version, description ?? cls.description ?? "");
  return cls;
}

/** The exported plugin; an error naming `exportPlugin` when there is none. */
export function registered() {
  if (current === null) throw new Error("no plugin class is exported with exportPlugin");
  return current;
}
