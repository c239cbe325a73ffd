// Writes the seed corpus of proto_fuzz: one file per sample frame (every type) and one file with a
// whole example session, all produced by the real encoder. Usage: make_proto_corpus DIR
// (tests/fuzz/corpus/proto holds its output; the unit tests check that the files are current).
#include <cstdio>
#include <fstream>
#include <string>

#include "unit/proto/samples.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_proto_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const auto& [name, bytes] : pyrun::proto::samples::corpus()) {
    std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_proto_corpus: cannot write %s/%s\n", dir.c_str(), name.c_str());
      return 1;
    }
  }
  return 0;
}
