// Logging: spdlog to stderr (journald takes it under systemd; stdout stays for data).
#pragma once
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace campus {

// Makes the "campus" logger the default one, writing to stderr at `level`. Under systemd
// (JOURNAL_STREAM set) lines carry no timestamp: the journal adds its own.
std::shared_ptr<spdlog::logger> init_logging(const std::string& level);
void set_log_level(const std::string& level);

}  // namespace campus
