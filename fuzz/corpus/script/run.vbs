Dim o
On Error Resume Next
Set o = CreateObject("WScript.Shell")
o.Run "cmd /c echo"
