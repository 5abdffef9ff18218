# Sourced by ./aule and the test scripts: finds a JDK 25 or newer and exports JAVA_HOME and PATH.
# Looks at $JAVA_HOME first, then every JDK under /usr/lib/jvm (the newest wins). Returns 1 with
# a message on stderr when there is none. Written for `set -euo pipefail` callers and bash 3.2+.

# The feature release of the java in JDK directory $1 ("25" for 25.0.3, "8" for 1.8.0); fails if unknown.
aule_java_major() {
    local output line version major
    output=$("$1/bin/java" -version 2>&1) || return 1
    line=${output%%$'\n'*}                 # openjdk version "25.0.3" 2025-10-21 LTS
    [[ $line == *'version "'* ]] || return 1
    version=${line#*version \"}
    version=${version%%\"*}
    [[ $version == 1.* ]] && version=${version#1.}   # Java 8 and older: 1.8.0_402
    major=${version%%[!0-9]*}
    [[ -n $major ]] || return 1
    echo "$major"
}

# A full JDK (javac too: Maven compiles with it) of release 25 or newer.
aule_is_jdk25() {
    local major
    [[ -x "$1/bin/java" && -x "$1/bin/javac" ]] || return 1
    major=$(aule_java_major "$1") || return 1
    (( major >= 25 ))
}

aule_find_jdk() {
    if [[ -n ${JAVA_HOME:-} ]] && aule_is_jdk25 "$JAVA_HOME"; then
        echo "$JAVA_HOME"
        return 0
    fi
    local dir best="" best_major=0 major
    for dir in /usr/lib/jvm/*/; do
        dir=${dir%/}
        aule_is_jdk25 "$dir" || continue
        major=$(aule_java_major "$dir")
        if (( major > best_major )); then
            best=$dir
            best_major=$major
        fi
    done
    [[ -n $best ]] || return 1
    echo "$best"
}

aule_java_env() {
    local jdk
    if ! jdk=$(aule_find_jdk); then
        echo "aule needs JDK 25 or newer (a JDK, not just a JRE). Install one (e.g. Temurin 25) under /usr/lib/jvm or set JAVA_HOME." >&2
        return 1
    fi
    export JAVA_HOME=$jdk
    export PATH="$JAVA_HOME/bin:$PATH"
}

aule_java_env
