// Logging through spdlog: one named logger, level from TESSERA_LOG_LEVEL or set_log_level.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace tessera {

spdlog::logger& logger();
void set_log_level(std::string_view level);  // "trace".."off"

}  // namespace tessera

#define TESSERA_LOG_INFO(...) ::tessera::logger().info(__VA_ARGS__)
#define TESSERA_LOG_WARN(...) ::tessera::logger().warn(__VA_ARGS__)
#define TESSERA_LOG_ERROR(...) ::tessera::logger().error(__VA_ARGS__)
#define TESSERA_LOG_DEBUG(...) ::tessera::logger().debug(__VA_ARGS__)
