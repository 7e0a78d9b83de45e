import { describe, expect, it } from "vitest";
import { instantText } from "../../cli/instant-answer.js";

const texts = { version: "9.9.9\n", help: "Usage: tftcache [options] [command]\n" };

describe("the kept --version and --help answers (cli/instant-answer.ts)", () => {
  it("answers --version and -V anywhere, --help and -h only when stdout is not a terminal", () => {
    expect(instantText(["--version"], true, texts)).toBe(texts.version);
    expect(instantText(["-V"], false, texts)).toBe(texts.version);
    expect(instantText(["--help"], false, texts)).toBe(texts.help);
    expect(instantText(["-h"], false, texts)).toBe(texts.help);
    // A terminal gets help wrapped to its own width: commander has to render it.
    expect(instantText(["--help"], true, texts)).toBeNull();
    expect(instantText(["-h"], true, texts)).toBeNull();
  });

  it("leaves everything else to the program", () => {
    for (const argv of [[], ["help"], ["stats"], ["seed", "--help"], ["--help", "seed"], ["--verbose", "--version"], ["--version", "x"], ["--Version"], ["--version="], ["-hV"]]) {
      expect(instantText(argv, false, texts), argv.join(" ")).toBeNull();
    }
  });
});
