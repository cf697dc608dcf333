// Opening the agent's store: the schema and its migrations, the checks a database must pass,
// and the recovery from a broken, emptied or deleted one (docs/store.md "Recovery").
// store.cpp holds what the open store does.
#pragma once
#include <filesystem>
#include <memory>

#include "core/sqlite.hpp"
#include "core/store.hpp"

namespace campus {

// store.cpp: the store on a database open_database (store_open.cpp) checked and migrated.
std::unique_ptr<Store> make_sqlite_store(const std::filesystem::path& file, StoreOptions options,
                                         std::unique_ptr<sqlite::Connection> db);

}  // namespace campus
