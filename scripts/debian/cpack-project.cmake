# Read by cpack at packaging time: the collector depends on the campus-agent of its own version,
# also when the version is given on the command line (cpack -D CPACK_PACKAGE_VERSION=...).
set(CPACK_DEBIAN_COUNTY_PACKAGE_DEPENDS "campus-agent (= ${CPACK_PACKAGE_VERSION}), adduser")
