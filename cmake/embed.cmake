# embed.cmake - turns a file into a C source defining
#   const char NAME[] (the bytes, then a NUL) and const size_t NAME_len.
# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
# (used for the page of `railgun serve`: no CDN, nothing read at run time)
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n  " body "${body}")
file(WRITE "${OUT}.tmp"
  "/* generated from ${IN} by cmake/embed.cmake: do not edit */\n"
  "#include <stddef.h>\n"
  "const char ${NAME}[] = {\n  ${body}0x00\n};\n"
  "const size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
