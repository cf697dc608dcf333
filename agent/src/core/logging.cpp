#include "core/logging.hpp"

#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>

namespace campus {

std::shared_ptr<spdlog::logger> init_logging(const std::string& level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto log = std::make_shared<spdlog::logger>("campus", sink);
  if (std::getenv("JOURNAL_STREAM")) log->set_pattern("%l [%n] %v");
  else log->set_pattern("%Y-%m-%d %H:%M:%S.%e %l [%n] %v");
  spdlog::set_default_logger(log);
  set_log_level(level);
  return log;
}

void set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  spdlog::set_level(lvl);
  if (auto log = spdlog::default_logger()) log->set_level(lvl);
}

}  // namespace campus
