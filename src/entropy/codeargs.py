"""Which arguments of a command line some program reads as code.

`[sh, -c, "ping {host}"]` hands the host name to a shell as part of its
script: a host named `$(touch pwned)` runs. The definitions refuse a
placeholder in such an argument, and the operator reads the value from the
environment instead (`"$ENTROPY_HOST"`), where no parser sees it as code.

This module knows the programs that take code in an argument: shells
(`-c`), script interpreters (`python -c`, `perl -e`, `ruby -e`, `node -e`,
`php -r`, `lua -e`, ...), `awk` and `sed` programs, `ssh`'s remote command
(run by the remote shell) and its `-o`/`-J` options (ProxyCommand runs a
local shell), database shells that run shell escapes (`psql -c`, `mysql
-e`, `sqlite3`), and wrappers that hand their arguments to a shell (`sudo
-s`, `su -c`, `flock -c`, `watch`, `env -S`, `parallel`, `tmux`). Every
argument is looked at, not just the first, so a program behind a wrapper
(`env`, `sudo`, `nice`, `timeout 5`, `/bin/sh`, `busybox sh`, `xargs`,
`find -exec`) is found too; a word that merely names one of these programs
(`[echo, sh, -c, x]`) is treated the same way, which errs on the safe side.

`shell_words()` splits a `shell: true` command into simple commands, so the
same question can be asked of a program the shell text runs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence

Found = dict[int, str]  # argument index -> what reads it as code

_VERSION = re.compile(r"[-.]?[0-9][0-9.]*$")
_HAS_PLACEHOLDER = re.compile(r"(?<![$\\])\{[A-Za-z_]\w*(?:\.[^{}\s]+)?\}")


def program(word: str) -> str:
    """The program a word names: `/usr/bin/python3.11` -> `python`."""
    base = word.rsplit("/", 1)[-1]
    return _VERSION.sub("", base) or base


PROGRAM = "the program that runs"  # a `why` starting so marks a program position


def code_arguments(argv: Sequence[str]) -> Found:
    """{index: why} for each argument of argv that some program would run as code.

    Program positions (argv[0], the command a wrapper such as `sudo` or
    `timeout 5` runs) are included, with a why starting with PROGRAM: a
    value there chooses what runs.
    """
    found: Found = {}
    if argv:
        found[0] = PROGRAM
    for i, word in enumerate(argv):
        handler = _HANDLERS.get(program(word))
        if handler is not None:
            handler(argv, i, found)
    return found


# -- shells -------------------------------------------------------------------------------

SHELLS = frozenset(
    [
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "ash",
        "mksh",
        "yash",
        "posh",
        "fish",
        "tcsh",
        "csh",
        "rbash",
        "lksh",
        "oksh",
        "pdksh",
    ]
)


def _shell(argv: Sequence[str], i: int, found: Found) -> None:
    """`sh [options] -c SCRIPT [$0 [$1 ...]]`: SCRIPT is code, the rest are plain words."""
    name = program(argv[i])
    j, command = i + 1, False
    while j < len(argv):
        arg = argv[j]
        if arg in ("-", "--"):
            j += 1
            break
        if arg.startswith("--"):
            option, eq, _ = arg[2:].partition("=")
            if option == "command":  # fish
                command = True
                if eq:
                    found[j] = f"the script of `{name} --command`"
                    return
            elif option in ("rcfile", "init-file") and not eq:
                j += 1
            j += 1
            continue
        if len(arg) > 1 and arg[0] in "-+":
            if _HAS_PLACEHOLDER.search(arg):
                found[j] = f"an option of `{name}`"
            flags = arg[1:]
            command = command or "c" in flags
            j += 1 + flags.count("o") + flags.count("O")  # -o NAME, -O NAME take a word
            continue
        break
    if command and j < len(argv):
        found[j] = f"the script of `{name} -c`"


# -- interpreters with options that take code ----------------------------------------------


def _interpreter(
    code: str,
    values: str = "",
    rest: str = "",
    digits: str = "",
    stop: str = "",
    code_long: frozenset[str] = frozenset(),
    values_long: frozenset[str] = frozenset(),
    words: frozenset[str] = frozenset(),
    operand_is_code: bool = False,
    program_from: str = "",
) -> Callable[[Sequence[str], int, Found], None]:
    """A handler for `prog [options] [operand ...]`.

    code: short options whose value (attached, or the next argument) is code;
    values: short options taking a value that isn't; rest: short options that
    take the rest of their cluster; digits: ones followed by optional digits;
    stop: ones after which the program's own arguments begin; code_long and
    values_long: the same for `--long[=value]`; words: single-dash words
    whose next argument is code (`erl -eval`); operand_is_code: with no code
    option given, the first operand is the program text (awk), unless one of
    the options in program_from (short or long) names a program file.
    """

    def handle(argv: Sequence[str], i: int, found: Found) -> None:
        name = program(argv[i])
        j, given = i + 1, False
        while j < len(argv):
            arg = argv[j]
            if arg == "--" or arg == "-" or not arg.startswith("-"):
                if arg == "--":
                    j += 1
                break
            if _HAS_PLACEHOLDER.search(arg):
                found[j] = f"an option of `{name}`"
            if arg in words:
                if j + 1 < len(argv):
                    found[j + 1] = f"code for `{name} {arg}`"
                given = True
                j += 2
                continue
            if arg.startswith("--"):
                option, eq, _ = arg[2:].partition("=")
                if option in code_long:
                    target = j if eq else j + 1
                    if target < len(argv):
                        found[target] = f"code for `{name} --{option}`"
                    given = True
                    j = target + 1
                else:
                    given = given or option in program_from.split()
                    j += 1 if eq or option not in values_long else 2
                continue
            k, following = 1, j + 1
            while k < len(arg):
                letter = arg[k]
                if letter in code or letter in values:
                    target = j if k + 1 < len(arg) else j + 1
                    given = given or letter in program_from
                    if letter in code:
                        if target < len(argv):
                            found[target] = f"code for `{name} -{letter}`"
                        given = True
                    following = target + 1
                    break
                if letter in stop:
                    return
                if letter in rest:
                    break
                k += 1
                if letter in digits:
                    while k < len(arg) and arg[k].isdigit():
                        k += 1
            j = following
        if operand_is_code and not given and j < len(argv):
            found[j] = f"the program text of `{name}`"

    return handle


def _sed(argv: Sequence[str], i: int, found: Found) -> None:
    """sed takes its options anywhere (GNU): any -e value is code, else the first operand."""
    name, given, first = program(argv[i]), False, None
    j = i + 1
    while j < len(argv):
        arg = argv[j]
        if arg == "--":
            first = j + 1 if first is None else first
            break
        if arg.startswith("--"):
            option, eq, _ = arg[2:].partition("=")
            if option in ("expression", "file", "line-length") and not eq:
                if option == "expression" and j + 1 < len(argv):
                    found[j + 1] = f"the script of `{name} --expression`"
                given = given or option in ("expression", "file")
                j += 2
                continue
            if option == "expression":
                found[j] = f"the script of `{name} --expression`"
            given = given or option in ("expression", "file")
        elif arg.startswith("-") and len(arg) > 1:
            for k, letter in enumerate(arg[1:], start=1):
                if letter in "efl":
                    target = j if k + 1 < len(arg) else j + 1
                    if letter == "e" and target < len(argv):
                        found[target] = f"the script of `{name} -e`"
                    given = given or letter in "ef"
                    j = target
                    break
                if letter == "i":
                    break
        elif first is None:
            first = j
        j += 1
    if not given and first is not None and first < len(argv):
        found[first] = f"the script of `{name}`"


# -- programs that hand arguments to a shell --------------------------------------------------


def _ssh(argv: Sequence[str], i: int, found: Found) -> None:
    """`ssh [options] destination [command ...]`: the remote shell runs the command.

    `-o ProxyCommand=...` and `-J` run through a local shell, so any -o or -J
    value with a placeholder counts as code too; options after the
    destination are read by ssh as well, so everything after it counts.
    """
    name = program(argv[i])
    j = i + 1
    while j < len(argv):
        arg = argv[j]
        if arg == "--":
            j += 1
            break
        if not arg.startswith("-") or len(arg) == 1:
            break
        following = j + 1
        for k, letter in enumerate(arg[1:], start=1):
            if letter in "BbcDEeFIiJLlmOoPpQRSWw":
                target = j if k + 1 < len(arg) else j + 1
                if letter in "oJF" and target < len(argv):  # ProxyCommand & co. run locally
                    found[target] = f"an -{letter} option of `{name}` (run by a local shell)"
                following = target + 1
                break
        j = following
    for k in range(j + 1, len(argv)):
        found[k] = f"the remote command of `{name}` (run by the remote shell)"


def _scp(argv: Sequence[str], i: int, found: Found) -> None:
    """scp, sftp: `-o`, `-J` and `-S program` as for ssh."""
    name = program(argv[i])
    for j in range(i + 1, len(argv)):
        arg = argv[j]
        if arg[:2] in ("-o", "-J", "-S"):
            target = j if len(arg) > 2 else j + 1
            if target < len(argv):
                found[target] = f"an {arg[:2]} option of `{name}` (run by a local shell)"


def _rsync(argv: Sequence[str], i: int, found: Found) -> None:
    """rsync `-e`/`--rsh` is the command it runs to reach the other side."""
    for j in range(i + 1, len(argv)):
        arg = argv[j]
        if arg in ("-e", "--rsh") and j + 1 < len(argv):
            found[j + 1] = "the remote shell command of `rsync -e`"
        elif arg.startswith("--rsh=") or (arg.startswith("-e") and len(arg) > 2):
            found[j] = "the remote shell command of `rsync -e`"


def _sudo(argv: Sequence[str], i: int, found: Found) -> None:
    """`sudo -s|-i COMMAND...` joins COMMAND into a shell's -c script."""
    j, shell = i + 1, False
    while j < len(argv):
        arg = argv[j]
        if arg == "--":
            j += 1
            break
        if arg in ("--shell", "--login"):
            shell = True
        elif arg.startswith("--"):
            option = arg[2:]
            if "=" not in option and option in _SUDO_VALUES_LONG:
                j += 1
        elif arg.startswith("-") and len(arg) > 1:
            for k, letter in enumerate(arg[1:], start=1):
                if letter in "si":
                    shell = True
                elif letter in "CDghpRrTtUu":
                    if k + 1 == len(arg):
                        j += 1
                    break
        else:
            break
        j += 1
    if shell:
        for k in range(j, len(argv)):
            found[k] = "a command `sudo -s/-i` hands to a shell"
    elif j < len(argv):
        found.setdefault(j, f"{PROGRAM} under `sudo`")


_SUDO_VALUES_LONG = frozenset(
    [
        "close-from",
        "chdir",
        "group",
        "host",
        "prompt",
        "chroot",
        "role",
        "type",
        "command-timeout",
        "other-user",
        "user",
    ]
)


def _wrapper(
    values: str = "",
    fixed: int = 0,
    assignments: bool = False,
    values_long: frozenset[str] = frozenset(),
) -> Callable[[Sequence[str], int, Found], None]:
    """`wrapper [options] [FIXED operands] PROGRAM ...`: PROGRAM is a program position.

    values: short options that take a value; fixed: operands before the
    program (timeout's duration, chroot's directory); assignments: NAME=VALUE
    operands are skipped (env).
    """

    def handle(argv: Sequence[str], i: int, found: Found) -> None:
        name = program(argv[i])
        j, left = i + 1, fixed
        while j < len(argv):
            arg = argv[j]
            if arg == "--":
                j += 1
                continue
            if arg.startswith("--") and len(arg) > 2:
                option, eq, _ = arg[2:].partition("=")
                j += 2 if option in values_long and not eq else 1
                continue
            if arg.startswith("-") and len(arg) > 1 and left == fixed:
                following = j + 1
                for k, letter in enumerate(arg[1:], start=1):
                    if letter in values:
                        following = j + 1 if k + 1 < len(arg) else j + 2
                        break
                j = following
                continue
            if assignments and "=" in arg and not arg.startswith("="):
                j += 1
                continue
            if left:
                left -= 1
                j += 1
                continue
            found.setdefault(j, f"{PROGRAM} under `{name}`")
            return

    return handle


def _dash_c(what: str) -> Callable[[Sequence[str], int, Found], None]:
    """`prog ... -c CMD` or `--command[=]CMD` anywhere: CMD is a shell command (su, flock)."""

    def handle(argv: Sequence[str], i: int, found: Found) -> None:
        name = program(argv[i])
        for j in range(i + 1, len(argv)):
            arg = argv[j]
            if arg in ("--command", "--session-command"):
                if j + 1 < len(argv):
                    found[j + 1] = f"{what} of `{name} {arg}`"
            elif arg.startswith(("--command=", "--session-command=")):
                found[j] = f"{what} of `{name} --command`"
            elif arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
                at = arg.index("c")
                target = j if at + 1 < len(arg) else j + 1
                if target < len(argv):
                    found[target] = f"{what} of `{name} -c`"

    return handle


def _watch(argv: Sequence[str], i: int, found: Found) -> None:
    """watch joins its operands into a `sh -c` command, unless -x/--exec."""
    j = i + 1
    while j < len(argv) and argv[j].startswith("-"):
        arg = argv[j]
        if arg in ("-x", "--exec"):
            return
        if arg in ("-n", "--interval") or (arg.startswith("-") and arg[1:] in ("n",)):
            j += 1
        j += 1
    for k in range(j, len(argv)):
        found[k] = "a command `watch` hands to `sh -c`"


def _env(argv: Sequence[str], i: int, found: Found) -> None:
    """env -S STRING splits STRING into a command line; the first operand is a program."""
    for j in range(i + 1, len(argv)):
        arg = argv[j]
        if not arg.startswith("-") or arg == "--":
            break
        if arg in ("-S", "--split-string") and j + 1 < len(argv):
            found[j + 1] = "the command line of `env -S`"
        elif arg.startswith("--split-string=") or (arg.startswith("-S") and len(arg) > 2):
            found[j] = "the command line of `env -S`"
    _ENV_PROGRAM(argv, i, found)


_ENV_PROGRAM = _wrapper(
    values="uCS", assignments=True, values_long=frozenset({"unset", "chdir", "split-string"})
)


def _everything(what: str) -> Callable[[Sequence[str], int, Found], None]:
    """A program whose every argument may end up in a shell (tmux, screen)."""

    def handle(argv: Sequence[str], i: int, found: Found) -> None:
        for k in range(i + 1, len(argv)):
            found[k] = f"{what} of `{program(argv[i])}`"

    return handle


def _parallel(argv: Sequence[str], i: int, found: Found) -> None:
    """GNU parallel runs its command template through a shell; inputs follow `:::`."""
    for k in range(i + 1, len(argv)):
        if argv[k].startswith(":::"):
            return
        found[k] = "the command template of `parallel` (run by a shell)"


def _sqlite(argv: Sequence[str], i: int, found: Found) -> None:
    """sqlite3 DB [SQL ...]: SQL and dot-commands (`.shell`) after the database file."""
    j, database = i + 1, None
    while j < len(argv):
        arg = argv[j]
        if arg.startswith("-") and database is None:
            if arg.lstrip("-") == "cmd" and j + 1 < len(argv):
                found[j + 1] = "a command of `sqlite3 -cmd`"
                j += 1
            elif arg.lstrip("-") in ("init", "separator", "newline", "nullvalue", "vfs"):
                j += 1
        elif database is None:
            database = j
        else:
            found[j] = "SQL and dot-commands of `sqlite3` (`.shell` runs a shell)"
        j += 1


def _pwsh(argv: Sequence[str], i: int, found: Found) -> None:
    """pwsh -Command: everything after it is the command."""
    for j in range(i + 1, len(argv)):
        if argv[j].lower() in ("-c", "-command", "-encodedcommand", "-ec", "-e"):
            for k in range(j + 1, len(argv)):
                found[k] = "the command of `pwsh -Command`"
            return


def _deno(argv: Sequence[str], i: int, found: Found) -> None:
    if i + 2 < len(argv) and argv[i + 1] == "eval":
        for k in range(i + 2, len(argv)):
            if not argv[k].startswith("-"):
                found[k] = "code for `deno eval`"
                return


_HANDLERS: dict[str, Callable[[Sequence[str], int, Found], None]] = {
    **dict.fromkeys(SHELLS, _shell),
    **dict.fromkeys(("python", "pypy"), _interpreter("c", values="WX", stop="m")),
    # -I is where modules are loaded from: code too
    "perl": _interpreter("eEMmI", rest="ixCdDFVW", digits="l0"),
    "ruby": _interpreter("erI", values="CE", rest="xFiWTK", digits="0"),
    **dict.fromkeys(
        ("node", "nodejs", "bun"),
        _interpreter(
            "epr",
            values="C",
            code_long=frozenset(
                {"eval", "print", "require", "import", "loader", "experimental-loader"}
            ),
            values_long=frozenset({"inspect-port", "title", "conditions", "input-type"}),
        ),
    ),
    "deno": _deno,
    "php": _interpreter("rBREd", values="cfFztS"),
    **dict.fromkeys(("lua", "luajit"), _interpreter("el")),
    "expect": _interpreter("c", values="fD"),
    "Rscript": _interpreter("e"),
    "julia": _interpreter("eEL"),
    "osascript": _interpreter("e"),
    "elixir": _interpreter("er"),
    "guile": _interpreter("cl"),
    "racket": _interpreter("eft"),
    "erl": _interpreter("", words=frozenset({"-eval", "-run", "-s"})),
    **dict.fromkeys(
        ("awk", "gawk", "mawk", "nawk", "original-awk"),
        _interpreter(
            "eil",
            values="fFvEW",
            code_long=frozenset({"source", "include", "load"}),
            values_long=frozenset({"file", "field-separator", "assign", "exec"}),
            operand_is_code=True,
            program_from="f E file exec",
        ),
    ),
    **dict.fromkeys(("sed", "gsed"), _sed),
    "psql": _interpreter("c", values="hpUdfoLTvPFR", code_long=frozenset({"command"})),
    **dict.fromkeys(
        ("mysql", "mariadb"),
        _interpreter("e", values="hPuDS", code_long=frozenset({"execute", "init-command"})),
    ),
    "sqlite": _sqlite,
    "gdb": _interpreter(
        "",
        code_long=frozenset({"eval-command", "init-eval-command"}),
        words=frozenset({"-ex", "-iex", "-x"}),
    ),
    **dict.fromkeys(
        ("vim", "vi", "nvim"),
        _interpreter("cS", code_long=frozenset({"cmd"})),
    ),
    "emacs": _interpreter(
        "l",
        code_long=frozenset({"eval", "execute", "load"}),
        words=frozenset({"-eval", "-execute"}),
    ),
    **dict.fromkeys(("mongo", "mongosh"), _interpreter("", code_long=frozenset({"eval"}))),
    **dict.fromkeys(("pwsh", "powershell"), _pwsh),
    **dict.fromkeys(("ssh", "autossh"), _ssh),
    **dict.fromkeys(("scp", "sftp"), _scp),
    "rsync": _rsync,
    "sudo": _sudo,
    **dict.fromkeys(("su", "runuser"), _dash_c("the command")),
    "flock": _dash_c("the command"),
    "script": _dash_c("the command"),
    "watch": _watch,
    "env": _env,
    **dict.fromkeys(("nohup", "setsid", "command", "exec", "builtin", "chpst"), _wrapper()),
    "busybox": _wrapper(),
    "doas": _wrapper(values="uC"),
    "nice": _wrapper(values="n", values_long=frozenset({"adjustment"})),
    "ionice": _wrapper(values="cnp", values_long=frozenset({"class", "classdata"})),
    "timeout": _wrapper(values="sk", fixed=1, values_long=frozenset({"signal", "kill-after"})),
    "stdbuf": _wrapper(values="ioe"),
    "chrt": _wrapper(fixed=1),
    "taskset": _wrapper(fixed=1),
    "time": _wrapper(values="fo", values_long=frozenset({"format", "output"})),
    "xargs": _wrapper(
        values="IEdLnPsa",
        values_long=frozenset(
            {
                "replace",
                "eof",
                "delimiter",
                "max-lines",
                "max-args",
                "max-procs",
                "max-chars",
                "arg-file",
            }
        ),
    ),
    "chroot": _wrapper(fixed=1),
    "unshare": _wrapper(),
    "nsenter": _wrapper(values="tSG"),
    "strace": _wrapper(values="oepsuEIXbPa"),
    "ltrace": _wrapper(values="oepsuEIXbPa"),
    "sshpass": _wrapper(values="pfdP"),
    "setpriv": _wrapper(),
    "parallel": _parallel,
    **dict.fromkeys(("tmux", "screen"), _everything("a command or keys")),
}


# -- shell text ---------------------------------------------------------------------------------

# Words a shell itself reads as code: eval's arguments, trap's action, and
# bash's arithmetic (`let`, `[[ ... -eq ... ]]`), which evaluates a value's
# `a[$(cmd)]` even from a quoted variable.
_SHELL_CODE_WORDS = {"eval": "the arguments of `eval`", "let": "the expression of `let`",
                     "[[": "a `[[` test (bash evaluates its numbers as code)"}  # fmt: skip
_SEPARATORS = frozenset({";", "&", "&&", "|", "||", "(", ")", ";;", "|&", "\n"})


def shell_words(text: str) -> list[list[str]] | None:
    """The simple commands of a shell command line, as word lists; None if it can't be split.

    Quotes are removed as the shell would; comments are dropped; `$(...)` and
    backquotes are not followed (render_shell refuses placeholders inside them).
    """
    lexer = shlex.shlex(strip_comments(text), posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.whitespace = " \t\r"
    commands: list[list[str]] = [[]]
    try:
        for word in lexer:
            if word and not word.strip(";&|()\n"):
                commands.append([])  # an operator or a newline ends a simple command
            else:
                commands[-1].append(word)
    except ValueError:  # an open quote
        return None
    return [command for command in commands if command]


def strip_comments(text: str) -> str:
    """text without its shell comments (`#` starting a word, outside quotes, to the line end)."""
    if "#" not in text:
        return text
    out: list[str] = []
    i, state = 0, ""
    while i < len(text):
        char = text[i]
        if state == "'":
            state = "" if char == "'" else state
        elif char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif state == '"':
            state = "" if char == '"' else state
        elif char in "'\"":
            state = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t\n;&|()<>"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        out.append(char)
        i += 1
    return "".join(out)


def shell_quoting(text: str, end: int) -> str:
    """The sh quoting at text[end]: "" bare, "'" or '"' quoted, or "tangled".

    Tangled: after a backquote, a heredoc, `$(` inside double quotes, `$'`
    or `$((`, where the quoting rules change in ways not followed here (or,
    in bash's arithmetic, a variable's value is evaluated as code).
    """
    state = ""
    tangled = False
    i = 0
    while i < end:
        char = text[i]
        if state == "'":
            if char == "'":
                state = ""
        elif char == "\\":
            i += 1  # the next character is escaped
        elif char == "`" or (state == '"' and text.startswith("$(", i)):
            tangled = True  # a nested parse with its own quoting rules
        elif text.startswith(("$'", "$(("), i) and state != "'":
            tangled = True  # ANSI-C quotes; arithmetic, where bash evaluates a value as code
        elif state == '"':
            if char == '"':
                state = ""
        elif char in "'\"":
            state = char
        elif text.startswith("<<", i):
            tangled = True  # a heredoc body expands $(...) inside quote characters
        i += 1
    return "tangled" if tangled else state


_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


def shell_code(command: Sequence[str]) -> Found:
    """code_arguments() for one simple command of a shell, plus the shell's own code words.

    Leading keywords (`then`, `!`) and assignments (`LANG=C`) come before the
    program, so the program position is the first word after them.
    """
    start = 0
    while start < len(command) and (
        command[start] in _KEYWORDS or _ASSIGNMENT.match(command[start])
    ):
        start += 1
    found = {start + i: why for i, why in code_arguments(command[start:]).items()}
    for i, word in enumerate(command):
        if word == "trap" and i + 1 < len(command):
            found[i + 1] = "the action of `trap`"
        elif word in _SHELL_CODE_WORDS:
            for k in range(i + 1, len(command)):
                found[k] = _SHELL_CODE_WORDS[word]
    return found
