import { describe, expect, it } from "vitest";
import { JsonValueError, MAX_VALUE_DEPTH, canonicalJson } from "../../protocol/index.js";

const refusal = (v: unknown) => {
  try {
    canonicalJson(v);
  } catch (err) {
    expect(err).toBeInstanceOf(JsonValueError);
    return (err as Error).message;
  }
  throw new Error("expected a JsonValueError");
};

describe("canonicalJson follows JSON.stringify and never changes a value silently", () => {
  it("sorts keys recursively, keeps array order, calls toJSON (a Date becomes its ISO string)", () => {
    expect(canonicalJson({ b: 1, a: [3, { d: 1, c: 2 }], at: new Date(0), gone: undefined })).toBe('{"a":[3,{"c":2,"d":1}],"at":"1970-01-01T00:00:00.000Z","b":1}');
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"constructor":2}'))).toBe('{"__proto__":{"x":1},"constructor":2}');
  });

  it("refuses what JSON cannot represent, naming what and where", () => {
    expect(refusal({ a: { "x y": [1, new Map()] } })).toBe('value.a["x y"][1] is a Map, which JSON cannot represent exactly (convert it to a plain object or array)');
    expect(refusal({ s: new Set([1]) })).toMatch(/value\.s is a Set/);
    expect(refusal({ n: 1n })).toMatch(/value\.n is a BigInt/);
    expect(refusal({ f() {} })).toMatch(/value\.f is a function/);
    expect(refusal([NaN])).toMatch(/value\[0\] is NaN/);
    expect(refusal({ e: new Error("x") })).toMatch(/value\.e is an Error/);
  });

  it("names a cycle as a cycle, while shared (acyclic) references are fine", () => {
    const a: Record<string, unknown> = { x: [1] };
    (a.x as unknown[]).push(a);
    expect(refusal(a)).toMatch(/value\.x\[1\] is a reference to itself \(a cycle\)/);
    const shared = { s: 1 };
    expect(canonicalJson({ p: shared, q: [shared, shared] })).toBe('{"p":{"s":1},"q":[{"s":1},{"s":1}]}');
  });

  it(`nests up to ${MAX_VALUE_DEPTH} levels and refuses deeper values (5,000 levels) without overflowing the stack`, () => {
    const nest = (n: number) => JSON.parse("[".repeat(n) + "1" + "]".repeat(n));
    expect(canonicalJson(nest(MAX_VALUE_DEPTH))).toBe("[".repeat(MAX_VALUE_DEPTH) + "1" + "]".repeat(MAX_VALUE_DEPTH));
    expect(refusal(nest(MAX_VALUE_DEPTH + 1))).toMatch(new RegExp(`nested deeper than ${MAX_VALUE_DEPTH} levels`));
    expect(refusal(nest(5000))).toMatch(/nested deeper than/);
  });
});
