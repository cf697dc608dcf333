// Reads a school's export as UTF-8 text: UTF-8 (BOM optional) as is, GB18030 (GBK) converted.
#pragma once
#include <filesystem>
#include <string>

#include "campus/error.hpp"

namespace campus::attendance {

// Error (naming the file and how to re-export) when the bytes are neither UTF-8 nor GB18030.
Result<std::string> read_text_file(const std::filesystem::path& file);
// The same for bytes already in memory; `name` is used in messages.
Result<std::string> to_utf8_text(std::string bytes, const std::string& name);

}  // namespace campus::attendance
