// The county database's schema (sql_schema.cpp): versioned migrations for either engine.
#pragma once
#include <string>

#include "sql.hpp"

namespace campus::county {

inline constexpr const char* kApplication = "campus-county";  // meta.application

// The version the schema ends at (the number of migrations).
int schema_version();
// The SQL that takes the schema from `from_version` to from_version + 1 on `engine`.
std::string migration(int from_version, sql::Engine engine);

}  // namespace campus::county
