import type { Argument, Command, Option } from "commander";

export type Shell = "bash" | "zsh" | "fish";

/** What completion needs of one option, read from commander's own definition. */
interface OptSpec {
  long?: string;
  short?: string;
  description: string;
  /** Takes a value (`--ttl <seconds>`); optional values (`--watch [s]`) are completed like flags. */
  takesValue: boolean;
  choices: string[];
  /** The value is a path (`--config <file>`). */
  file: boolean;
}

interface CmdSpec {
  name: string;
  description: string;
  options: OptSpec[];
  /** Per positional argument: its choices, or "file" for a path, or nothing to complete. */
  args: Array<{ name: string; choices: string[]; file: boolean }>;
}

const optSpec = (o: Option): OptSpec => ({
  ...(o.long ? { long: o.long } : {}),
  ...(o.short ? { short: o.short } : {}),
  description: o.description,
  takesValue: o.required,
  choices: o.argChoices ?? [],
  file: /<file>/.test(o.flags),
});

const argSpec = (a: Argument) => ({ name: a.name(), choices: a.argChoices ?? [], file: a.name() === "file" });

/** The program's tree, as commander holds it: every command, option, argument and choice. */
export function describeProgram(program: Command): { globals: OptSpec[]; commands: CmdSpec[] } {
  const help: OptSpec = { long: "--help", short: "-h", description: "display help", takesValue: false, choices: [], file: false };
  return {
    globals: [...program.options.map(optSpec), help],
    commands: program.commands.map((c) => ({
      name: c.name(),
      description: c.description(),
      options: [...c.options.map(optSpec), help],
      args: c.registeredArguments.map(argSpec),
    })),
  };
}

const flagsOf = (o: OptSpec) => [o.long, o.short].filter((f): f is string => !!f);
/** A word list for bash/zsh: only option names and fixed choices, which contain no shell metacharacters. */
const words = (list: string[]) => [...new Set(list)].join(" ");
/** Program options that also work after a command (commander reads them anywhere), without --version/--help. */
const inherited = (globals: OptSpec[]) => globals.filter((o) => o.long !== "--version" && o.long !== "--help");
const sq = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

function bash(p: ReturnType<typeof describeProgram>, prog: string): string {
  const valueOpts = (opts: OptSpec[]) => opts.filter((o) => o.takesValue);
  const optionValueCases = (opts: OptSpec[], indent: string) =>
    valueOpts(opts)
      .map((o) => {
        const pattern = flagsOf(o).join("|");
        const body = o.choices.length ? `COMPREPLY=($(compgen -W ${sq(words(o.choices))} -- "$cur"))` : o.file ? `COMPREPLY=($(compgen -f -- "$cur"))` : "COMPREPLY=()";
        return `${indent}${pattern}) ${body}; return 0 ;;`;
      })
      .join("\n");
  const allValueFlags = [...new Set([...p.globals, ...p.commands.flatMap((c) => c.options)].filter((o) => o.takesValue).flatMap(flagsOf))];
  const commandCases = p.commands
    .map((c) => {
      const opts = [...c.options, ...inherited(p.globals)];
      const positional = c.args
        .map((a, i) => {
          const body = a.choices.length ? `COMPREPLY=($(compgen -W ${sq(words(a.choices))} -- "$cur"))` : a.file ? `COMPREPLY=($(compgen -f -- "$cur"))` : "COMPREPLY=()";
          return `          ${i}) ${body} ;;`;
        })
        .join("\n");
      return `      ${c.name})
        case "$prev" in
${optionValueCases(c.options, "          ")}
        esac
        if [[ "$cur" == -* ]]; then
          COMPREPLY=($(compgen -W ${sq(words(opts.flatMap(flagsOf)))} -- "$cur"))
        else
          case "$npos" in
${positional || "          *) COMPREPLY=() ;;"}
          esac
        fi
        ;;`;
    })
    .join("\n");
  return `# ${prog} completion for bash. Load it with:  source <(${prog} completion bash)
# (or save it as /etc/bash_completion.d/${prog}). Generated from the CLI's own command tree.
_${prog.replace(/-/g, "_")}_complete() {
  local cur prev cmd="" npos=0 i word
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command is the first word that is neither an option nor an option's value; count positionals after it.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      -*) continue ;;
    esac
    case " ${words(allValueFlags)} " in
      *" \${COMP_WORDS[i-1]} "*) continue ;;
    esac
    if [[ -z "$cmd" ]]; then cmd="$word"; else npos=$((npos + 1)); fi
  done
  case "$prev" in
${optionValueCases(p.globals, "    ")}
  esac
  case "$cmd" in
    "")
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W ${sq(words(p.globals.flatMap(flagsOf)))} -- "$cur"))
      else
        COMPREPLY=($(compgen -W ${sq(words(p.commands.map((c) => c.name)))} -- "$cur"))
      fi
      ;;
${commandCases}
  esac
  return 0
}
complete -o bashdefault -o default -F _${prog.replace(/-/g, "_")}_complete ${prog}
`;
}

/** zsh `_arguments` specs: brackets, colons and backslashes in descriptions are escaped, quotes handled by sq(). */
const zdesc = (s: string) => s.replace(/\\/g, "\\\\").replace(/([[\]:])/g, "\\$1");

function zshOpt(o: OptSpec): string[] {
  const action = o.takesValue ? (o.choices.length ? `:value:(${o.choices.join(" ")})` : o.file ? ":file:_files" : ":value:") : "";
  const names = flagsOf(o);
  if (names.length === 2) return [sq(`(${names.join(" ")})`) + `{${names.map((n) => n).join(",")}}` + sq(`[${zdesc(o.description)}]${action}`)];
  return names.map((n) => sq(`${n}[${zdesc(o.description)}]${action}`));
}

function zsh(p: ReturnType<typeof describeProgram>, prog: string): string {
  const commands = p.commands.map((c) => `    ${sq(`${c.name}:${zdesc(c.description)}`)}`).join("\n");
  const cases = p.commands
    .map((c) => {
      const args = c.args.map((a, i) => sq(`${i + 1}:${a.name}:${a.choices.length ? `(${a.choices.join(" ")})` : a.file ? "_files" : ""}`));
      const specs = [...c.options.flatMap(zshOpt), ...args].map((s) => `          ${s}`).join(" \\\n");
      return `        ${c.name})\n          _arguments -s \\\n${specs}\n          ;;`;
    })
    .join("\n");
  const globals = p.globals.flatMap(zshOpt).map((s) => `    ${s} \\`).join("\n");
  return `#compdef ${prog}
# ${prog} completion for zsh. Save it as _${prog} in a folder on $fpath, or load it with:  source <(${prog} completion zsh)
# Generated from the CLI's own command tree.
_${prog}() {
  local curcontext="$curcontext" state line ret=1
  typeset -A opt_args
  local -a commands
  commands=(
${commands}
  )
  _arguments -C \\
${globals}
    '1: :->command' \\
    '*:: :->args' && ret=0
  case $state in
    command)
      _describe -t commands '${prog} command' commands && ret=0
      ;;
    args)
      case $words[1] in
${cases}
      esac
      ;;
  esac
  return ret
}
if [[ "\${funcstack[1]}" == "_${prog}" ]]; then
  _${prog} "$@"
else
  compdef _${prog} ${prog}
fi
`;
}

/** fish strings: single-quoted, with \\ and \' escaped. */
const fq = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

function fishOpt(prog: string, o: OptSpec, condition: string): string {
  const parts = [`complete -c ${prog}`];
  if (condition) parts.push(`-n ${fq(condition)}`);
  if (o.long) parts.push(`-l ${o.long.replace(/^--/, "")}`);
  if (o.short) parts.push(`-s ${o.short.replace(/^-/, "")}`);
  if (o.takesValue) parts.push(o.choices.length ? `-x -a ${fq(o.choices.join(" "))}` : o.file ? "-r -F" : "-x");
  parts.push(`-d ${fq(o.description)}`);
  return parts.join(" ");
}

function fish(p: ReturnType<typeof describeProgram>, prog: string): string {
  const names = p.commands.map((c) => c.name).join(" ");
  const lines = [
    `# ${prog} completion for fish. Save it as ~/.config/fish/completions/${prog}.fish, or load it with:  ${prog} completion fish | source`,
    "# Generated from the CLI's own command tree.",
    `complete -c ${prog} -f`,
    ...p.globals.map((o) => fishOpt(prog, o, "")),
    ...p.commands.map((c) => `complete -c ${prog} -n ${fq(`not __fish_seen_subcommand_from ${names}`)} -a ${c.name} -d ${fq(c.description)}`),
  ];
  for (const c of p.commands) {
    const cond = `__fish_seen_subcommand_from ${c.name}`;
    for (const o of c.options) lines.push(fishOpt(prog, o, cond));
    for (const a of c.args) {
      if (a.choices.length) lines.push(`complete -c ${prog} -n ${fq(cond)} -x -a ${fq(a.choices.join(" "))}`);
      else if (a.file) lines.push(`complete -c ${prog} -n ${fq(cond)} -F`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** A completion script for `shell`, built from the program's commander tree (so it never lags behind the CLI). */
export function completionScript(program: Command, shell: Shell): string {
  const tree = describeProgram(program);
  const prog = program.name();
  return shell === "bash" ? bash(tree, prog) : shell === "zsh" ? zsh(tree, prog) : fish(tree, prog);
}
