# embed.cmake - turns a file into a C initializer list (bytes, then a
# terminating 0), for `static const char x[] = { #include "out" };`.
#   cmake -DIN=index.html -DOUT=dashboard_html.inc -P embed.cmake
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "embed.cmake: -DIN=FILE -DOUT=FILE")
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
# 32 bytes (64 hex digits) per line
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" body "${body}")
math(EXPR bytes "${n} / 2")
file(WRITE "${OUT}.tmp" "/* generated from ${IN} by embed.cmake: ${bytes} bytes */\n${body}\n0x00\n")
file(RENAME "${OUT}.tmp" "${OUT}")
