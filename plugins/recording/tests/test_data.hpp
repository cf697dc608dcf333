// The replies and SDPs devices send, kept in tests/data (RECORDING_TEST_DATA), for the tests.
#pragma once
#include <fstream>
#include <sstream>
#include <string>

namespace campus::recording::test {

// The file's bytes; empty when it cannot be read (the test then fails on what it expected).
inline std::string data(const std::string& name) {
  std::ifstream in(std::string(RECORDING_TEST_DATA) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace campus::recording::test
