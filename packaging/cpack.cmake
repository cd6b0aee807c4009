# SPDX-License-Identifier: Apache-2.0
# The deb and rpm packages (cpack -G DEB, cpack -G RPM from the build
# directory). Binaries and data under /usr, configuration under /etc.
# Included from the top CMakeLists.txt after the binaries' install rules.

set(CORDON_PKG ${CMAKE_SOURCE_DIR}/packaging)

# Man pages and the Debian changelog, compressed as both distributions ship them.
set(CORDON_GZ_DIR ${CMAKE_BINARY_DIR}/packaging)
set(CORDON_GZ_FILES)
foreach(src man/agent-run.1 man/cordonctl.1 man/cordond.8 changelog)
  get_filename_component(name ${src} NAME)
  if(name STREQUAL "changelog")
    set(name changelog.Debian)
  endif()
  add_custom_command(OUTPUT ${CORDON_GZ_DIR}/${name}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CORDON_GZ_DIR}
    COMMAND gzip -9n -c ${CORDON_PKG}/${src} > ${CORDON_GZ_DIR}/${name}.gz
    DEPENDS ${CORDON_PKG}/${src})
  list(APPEND CORDON_GZ_FILES ${CORDON_GZ_DIR}/${name}.gz)
endforeach()
add_custom_target(cordon_package_docs ALL DEPENDS ${CORDON_GZ_FILES})

install(FILES ${CORDON_GZ_DIR}/agent-run.1.gz ${CORDON_GZ_DIR}/cordonctl.1.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CORDON_GZ_DIR}/cordond.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CORDON_PKG}/completion/agent-run ${CORDON_PKG}/completion/cordonctl
              ${CORDON_PKG}/completion/cordond
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${CORDON_PKG}/cordond.service DESTINATION lib/systemd/system)
install(FILES ${CORDON_PKG}/copyright ${CORDON_GZ_DIR}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/cordon)
install(FILES ${CORDON_PKG}/cordond.json DESTINATION /etc/cordon)
install(DIRECTORY DESTINATION /etc/cordon/profiles.d)
install(FILES ${CORDON_PKG}/cordon.logrotate DESTINATION /etc/logrotate.d RENAME cordon)

set(CPACK_PACKAGE_NAME cordon)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "The Cordon authors")
set(CPACK_PACKAGE_CONTACT "Cordon maintainers <maintainers@cordon.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "kernel-enforced sandbox supervisor for AI agents")
set(CPACK_PACKAGE_DESCRIPTION
  "Cordon launches each AI agent under its own Non-Human Identity profile\nand has the kernel enforce it: eBPF cgroup programs, seccomp, Landlock,\nper-session credentials and deadlines. cordond serves permitted users,\nagent-run launches, cordonctl lists and stops sessions.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR "DEB;RPM")
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CORDON_PKG}/scripts/postinst ${CORDON_PKG}/scripts/prerm ${CORDON_PKG}/scripts/postrm
  ${CORDON_PKG}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_LICENSE Apache-2.0)
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_AUTOREQ ON)
set(CPACK_RPM_PACKAGE_RELOCATABLE OFF)
# The same file list as the .deb: no /usr/lib/.build-id links.
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none")
set(CPACK_RPM_USER_FILELIST
  "%config(noreplace) /etc/cordon/cordond.json" "%config(noreplace) /etc/logrotate.d/cordon")
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
  /etc /etc/logrotate.d /usr/lib/systemd /usr/lib/systemd/system /usr/share/bash-completion
  /usr/share/bash-completion/completions /usr/share/man /usr/share/man/man1 /usr/share/man/man8
  /usr/share/doc)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${CORDON_PKG}/scripts/postinst)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${CORDON_PKG}/scripts/prerm)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${CORDON_PKG}/scripts/postrm)

include(CPack)
