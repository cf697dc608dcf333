// Reading one TOML table with precise errors. Used by the core for agent.toml and by every
// plugin for its own [audits.<name>] table, so every message speaks the same way:
//   "/etc/campus-agent/agent.toml:14:1 key audits.fiber.timeout: expected a duration like "5s", got "fast""
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "campus/error.hpp"
#include "campus/export.hpp"
#include "campus/units.hpp"

namespace campus {

// Reads keys of one table; remembers which were read so finish() can report unknown keys.
// Every getter returns the default (or nullopt) after recording an Error when the value is
// present but wrong, so one pass collects all problems of a file.
class CAMPUS_API TableReader {
 public:
  // `path` is the dotted key path of the table ("audits.fiber"), `file` the file it came from.
  // Relative paths read with path() are resolved against file's directory.
  TableReader(const toml::table& table, std::string path, std::filesystem::path file, Errors& errors);

  std::string string(const std::string& key, const std::string& def);
  std::optional<std::string> optional_string(const std::string& key);
  std::string required_string(const std::string& key);
  bool boolean(const std::string& key, bool def);
  std::int64_t integer(const std::string& key, std::int64_t def, std::int64_t min, std::int64_t max);
  double number(const std::string& key, double def, double min, double max);
  Millis duration(const std::string& key, Millis def, Millis min = Millis(0),
                  Millis max = Millis(std::chrono::hours(24 * 365)));
  std::uint64_t size(const std::string& key, std::uint64_t def);
  // One of `allowed`; the error lists them.
  std::string choice(const std::string& key, const std::string& def, const std::vector<std::string>& allowed);
  // A file path, resolved against the config file's directory. must_exist: error when missing.
  std::filesystem::path path(const std::string& key, const std::filesystem::path& def, bool must_exist);
  std::optional<std::filesystem::path> optional_path(const std::string& key, bool must_exist);
  // A secret given as a file path: the file must exist, be a regular file and not be readable
  // by group or others (the error gives the chmod that fixes it). Returns the secret's content,
  // trailing newline stripped. Never logs the content.
  std::optional<std::string> secret_file(const std::string& key, bool required);
  std::vector<std::string> string_array(const std::string& key);
  // A sub-table; nullptr when absent (an error when present but not a table).
  const toml::table* table(const std::string& key);
  // True when the table has the key (whether or not its value was good): lets a plugin say
  // "missing" only for keys that are really absent, not again for a bad value.
  bool has(const std::string& key) const { return table_.contains(key); }
  // Mark a key as known without reading it (for keys read elsewhere).
  void known(const std::string& key);

  // Records an error for every key that was never read. Call after all getters; calling it
  // again does nothing (the core calls it after a plugin's configure as a safety net).
  void finish();

  // "file:line:col key path.key" for a key of this table (or of the table itself).
  std::string where(const std::string& key) const;
  void error(const std::string& key, std::string what, std::string fix = {});
  const std::filesystem::path& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  const toml::node* get(const std::string& key);
  const toml::table& table_;
  std::string path_;
  std::filesystem::path file_;
  Errors& errors_;
  std::set<std::string> read_;
  bool finished_ = false;
};

// Reads a secret file with the same checks as TableReader::secret_file.
CAMPUS_API Result<std::string> read_secret_file(const std::filesystem::path& file);

}  // namespace campus
