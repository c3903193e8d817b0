#!/usr/bin/env bash
# Compile and run GestureWindow + StreamingState + SelfTest and their JUnit tests on a plain JVM,
# without Gradle or the Android SDK (the three use only the Kotlin stdlib and org.json). Debian packages:
#   apt-get install kotlin junit4 libandroid-json-java
# (Debian's kotlinc is 1.3.31: the six files stay within Kotlin 1.3 syntax for that reason.)
# STREAMING_METADATA=FILE: a streaming metadata.json for StreamingStateTest.realExportedSectionIsRead;
# SELFTEST_VECTORS=FOLDER, SELFTEST_STREAM_VECTORS=FOLDER: an export's vectors.json + vectors.bin and
# the Python judge's expected.json, for SelfTestTest (clip and stream). Each test that needs one is
# skipped without it; tests/test_golden.py writes all three.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
golden="${GOLDEN_DIR:-$here/../tests/golden}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
jars=/usr/share/java
cp="$jars/junit4.jar:$jars/hamcrest-core.jar:$jars/com.android.json.jar"
kotlinc -nowarn -jvm-target 1.8 -cp "$cp" \
  "$here/app/src/main/java/org/actionnet/edge/demo/GestureWindow.kt" \
  "$here/app/src/main/java/org/actionnet/edge/demo/StreamingState.kt" \
  "$here/app/src/main/java/org/actionnet/edge/demo/SelfTest.kt" \
  "$here/app/src/test/java/org/actionnet/edge/demo/GestureWindowTest.kt" \
  "$here/app/src/test/java/org/actionnet/edge/demo/StreamingStateTest.kt" \
  "$here/app/src/test/java/org/actionnet/edge/demo/SelfTestTest.kt" \
  "$here/app/src/test/java/org/actionnet/edge/demo/Rejects.kt" -d "$out" 2>&1 | grep -v "OpenJDK 64-Bit Server VM warning" || true
java -Dgolden.dir="$golden" -Dstreaming.metadata="${STREAMING_METADATA:-}" \
  -Dselftest.vectors="${SELFTEST_VECTORS:-}" -Dselftest.stream_vectors="${SELFTEST_STREAM_VECTORS:-}" \
  -cp "$out:$jars/kotlin-stdlib.jar:$cp" \
  org.junit.runner.JUnitCore org.actionnet.edge.demo.GestureWindowTest org.actionnet.edge.demo.StreamingStateTest \
  org.actionnet.edge.demo.SelfTestTest
